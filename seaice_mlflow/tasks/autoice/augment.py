"""Patch augmentations that move inputs and charts together (flips, rot90, scale, CutMix).

Flips, quarter turns and zoom are expressed as index maps (which window row/column each patch
row/column shows, and whether axes are swapped) that :func:`grid.assemble_inputs` and the
charts follow alike while the patch is written, so labels stay aligned and nothing is
resampled twice. Zoom is nearest neighbour for inputs and charts (as torchvision's affine
default used by MMSeaIce), so chart classes are never blended. CutMix pastes a box of another
patch of the batch into inputs and charts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AUGMENTATIONS = ("flip", "rot90", "scale", "cutmix")


@dataclass(frozen=True)
class Augment:
    """Which augmentations are on; each is applied with probability ``p`` (MMSeaIce: 0.5)."""

    flip: bool = True
    rot90: bool = True
    scale: bool = True
    cutmix: bool = True
    p: float = 0.5
    scale_range: tuple[float, float] = (0.9, 1.1)

    @classmethod
    def parse(cls, spec: str) -> Augment:
        """From a comma list such as ``flip,rot90`` (``all`` or ``none`` also accepted)."""
        names = {s.strip() for s in spec.split(",") if s.strip()}
        if names == {"all"}:
            return cls()
        if names in ({"none"}, set()):
            return cls(False, False, False, False)
        unknown = names - set(AUGMENTATIONS)
        if unknown:
            raise ValueError(
                f"unknown augmentation(s) {', '.join(sorted(unknown))}; choose from "
                f"{', '.join(AUGMENTATIONS)}, all or none"
            )
        return cls(*(a in names for a in AUGMENTATIONS))

    def spec(self) -> str:
        on = [a for a in AUGMENTATIONS if getattr(self, a)]
        return ",".join(on) if on else "none"

    def read_size(self, size: int, rng: np.random.Generator) -> int:
        """Pixels to read for a ``size`` patch: ``size / s`` for a zoom s in ``scale_range``."""
        if self.scale and rng.random() < self.p:
            return max(1, int(round(size / rng.uniform(*self.scale_range))))
        return size

    def geometry(self, size: int, read: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, bool]:
        """Index maps (rows, cols) from a ``size`` patch into a ``read`` window, and a transpose flag.

        Two flips and a transpose give all 8 symmetries of the square (every quarter turn).
        """
        index = np.minimum(((np.arange(size) + 0.5) * read / size).astype(np.int64), read - 1)
        rows, cols = index, index
        if self.flip and rng.random() < self.p:
            rows = rows[::-1]
        if self.flip and rng.random() < self.p:
            cols = cols[::-1]
        transpose = bool(self.rot90 and rng.random() < self.p)
        return rows, cols, transpose


def cutmix_box(size: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A random square box (row, col, height, width) covering 10-50 % of a size x size patch,
    to be pasted from another patch into inputs and charts alike (CutMix)."""
    side = max(1, int(round(size * np.sqrt(rng.uniform(0.1, 0.5)))))
    return int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1)), side, side
