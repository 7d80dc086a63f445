"""What a value that is not finite (NaN, +-inf) in a scene's inputs means: one rule per variable group,
applied where every reader ends (:func:`~.prep.build_scene`) and to every window
:func:`~.windowed.open_scene` reads, so no path can hand one to a network.

Real raw files and users' own files carry NaNs. One that reaches the network spreads through every
convolution it touches: a single NaN cell of ``btemp_36_5h`` charted 12 % of a 600 x 700 scene as open
water (every valid pixel of another), with exit status 0 and a numpy warning as the only sign.

* **80 m variables** (HH, HV, incidence angle, distance map): a value that is not finite is no data.
  The pixel is masked like the fill value outside the swath: all four variables are set to 0 there
  (the files' ``variable_fill_value``), so HH = 0 marks it as a pixel without SAR, and its reference
  charts become 255: it is neither trained on nor scored, and the products leave it blank, as a pixel
  outside the swath. The raw reader and the AI4Arctic preparation align the masks of SAR and charts
  the same way; the distance map is included because a pixel whose distance to land is unknown
  cannot be told from land.
* **2 km variables** (AMSR2 brightness temperatures, ERA5): a cell that is not finite takes the value
  of the nearest finite cell of the same variable (Euclidean distance on the 2 km grid, scipy's
  distance transform). Masking it instead would blank the 25 x 25 SAR pixels under it; the
  radiometer's footprints (JAXA's AMSR2 figures: 35 x 62 km at 6.9 GHz down to 3 x 5 km at 89 GHz)
  and ERA5's ~31 km grid span several 2 km cells, so a neighbour holds nearly the same value. A
  variable without any finite cell cannot be filled: the file is refused.
* **Tie points** (latitude, longitude): the file is refused; the position encodings and every GIS
  product need them.

What was found and done travels with the scene (:class:`NonFinite`): ``seaice inspect`` reports it,
evaluate and predict print it per scene, the chart products carry it as the global attribute
``input_repairs`` and the training store in the scene's record. :func:`require_finite` is the final
guard where model inputs are assembled (:func:`~seaice_mlflow.tasks.autoice.grid.assemble_inputs`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seaice_mlflow.core.errors import SceneError, SeaIceError

#: 80 m lines checked at a time when the variables are read from a file (about 20 MB per float32
#: variable of a 5000 x 5200 scene).
STRIP_LINES = 1024


@dataclass(frozen=True)
class NonFinite:
    """The values of a scene's inputs that were not finite and what was done with them."""

    masked: Mapping[str, int] = field(default_factory=dict)  # 80 m variable -> its values not finite
    masked_pixels: int = 0  # 80 m pixels masked as no data for them
    filled: Mapping[str, int] = field(default_factory=dict)  # 2 km variable -> cells filled

    def __bool__(self) -> bool:
        return bool(self.masked_pixels or self.filled)

    def note(self) -> str:
        """One line for people and product metadata; empty when every input value was finite."""
        parts = []
        if self.masked_pixels:
            counts = ", ".join(f"{name} {count}" for name, count in self.masked.items())
            parts.append(f"{self.masked_pixels} 80 m pixel(s) masked as no data (values not finite: {counts})")
        if self.filled:
            counts = ", ".join(f"{name} {count}" for name, count in self.filled.items())
            parts.append(f"2 km cells not finite, filled from the nearest finite cell: {counts}")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, object]:
        return {"masked": dict(self.masked), "masked_pixels": self.masked_pixels, "filled": dict(self.filled)}


@dataclass(frozen=True)
class MaskedPixels:
    """The 80 m pixels where any variable is not finite (None: none is) and the count per variable."""

    pixels: np.ndarray | None
    counts: dict[str, int]


def scan_pixels(read: Callable[[str, slice], np.ndarray], names: Sequence[str], lines: int) -> MaskedPixels:
    """The pixels where any of the 80 m variables ``names`` is not finite; ``read(name, rows)`` gives
    the lines ``rows`` of a variable, read :data:`STRIP_LINES` at a time."""
    pixels, counts = None, {}
    for start in range(0, lines, STRIP_LINES):
        rows = slice(start, min(start + STRIP_LINES, lines))
        for name in names:
            bad = ~np.isfinite(read(name, rows))
            count = int(np.count_nonzero(bad))
            if count:
                counts[name] = counts.get(name, 0) + count
                if pixels is None:
                    pixels = np.zeros((lines, bad.shape[1]), bool)
                pixels[rows] |= bad
    return MaskedPixels(pixels, counts)


def blank(values: np.ndarray, pixels: np.ndarray | None) -> np.ndarray:
    """``values`` (a window of an 80 m variable, changed in place) set to the fill value 0 at ``pixels``
    (that window of :attr:`MaskedPixels.pixels`)."""
    if pixels is not None:
        values[pixels] = 0
    return values


def fill_cells(path: Path, coarse: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Fill, in place, each 2 km cell that is not finite with the nearest finite cell of its variable;
    returns the cells filled per variable. A variable without a finite cell is a :class:`SceneError`."""
    filled = {}
    for name, values in coarse.items():
        bad = ~np.isfinite(values)
        if not bad.any():
            continue
        if bad.all():
            raise SceneError(path, f"{name} holds no finite value (every 2 km cell is NaN or inf)",
                             "the file is damaged; download it again or leave it out")  # fmt: skip
        from scipy.ndimage import distance_transform_edt

        nearest = distance_transform_edt(bad, return_distances=False, return_indices=True)
        values[...] = values[tuple(nearest)]
        filled[name] = int(np.count_nonzero(bad))
    return filled


def check_tie_points(path: Path, grids: Mapping[str, np.ndarray]) -> None:
    """A :class:`SceneError` when a latitude or longitude tie point is not finite."""
    for name, grid in grids.items():
        bad = int(np.count_nonzero(~np.isfinite(grid)))
        if bad:
            raise SceneError(path, f"{bad} of the {grid.size} {name} tie points are not finite",
                             "the geolocation grid is damaged; download the file again")  # fmt: skip


def repair_inputs(
    path: Path,
    sar: Mapping[str, np.ndarray],
    coarse: Mapping[str, np.ndarray],
    tie_points: Mapping[str, np.ndarray],
    masked: MaskedPixels | None = None,
) -> tuple[NonFinite, np.ndarray | None]:
    """Apply the module's rules, in place, to what a reader loaded: ``sar`` (the 80 m variables it
    loaded), ``coarse`` (every 2 km variable) and the tie points. ``masked``: the pixels found over
    every 80 m variable when ``sar`` holds only some of them (a file read window by window). Returns
    what was done and the masked pixels (None: none), whose charts the caller sets to 255."""
    check_tie_points(path, tie_points)
    if masked is None:
        lines = len(next(iter(sar.values())))
        masked = scan_pixels(lambda name, rows: sar[name][rows], list(sar), lines)
    for name in sar:
        blank(sar[name], masked.pixels)
    filled = fill_cells(path, coarse)
    pixels = 0 if masked.pixels is None else int(np.count_nonzero(masked.pixels))
    return NonFinite(masked.counts, pixels, filled), masked.pixels


def require_finite(values: Mapping[str, np.ndarray], scene: str) -> None:
    """The final guard before a network: a :class:`SeaIceError` naming the first of ``values`` (model
    inputs about to be assembled) that holds a value that is not finite. The readers repair such
    values (module docstring), so this fires only for inputs that did not come through them."""
    for name, array in values.items():
        if not np.isfinite(array).all():
            count = int(np.count_nonzero(~np.isfinite(array)))
            raise SeaIceError(
                f"{scene}: input {name} holds {count} value(s) that are not finite (NaN or inf) and must not "
                "reach the network; read scene files with seaice_mlflow's readers (they mask or fill such "
                "values), or run `seaice preprocess --overwrite` on a store written before they did"
            )
