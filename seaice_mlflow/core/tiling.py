"""Windows of a grid and where tiles come from: what the tiled engine reads, task-agnostic.

A :class:`TileSource` hands the engine the model inputs of any window of its working grid, so a
whole scene (or photo mosaic) is never assembled in memory.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np


class Window(NamedTuple):
    """A rectangle of a grid: top-left pixel and size."""

    row: int
    col: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.row, self.row + self.height), slice(self.col, self.col + self.width)

    @classmethod
    def full(cls, shape: tuple[int, int]) -> Window:
        return cls(0, 0, int(shape[0]), int(shape[1]))


class TileSource(Protocol):
    """Model inputs of any window of a working grid."""

    shape: tuple[int, int]  # working grid

    def read(self, window: Window) -> np.ndarray:
        """Model inputs (C, h, w) float32 of ``window``."""


def upsample_chart(chart: np.ndarray, k: int, shape: tuple[int, int]) -> np.ndarray:
    """Working-grid class maps (..., h, w) repeated back to the full-resolution ``shape``."""
    if k == 1:
        return chart
    out = np.repeat(np.repeat(chart, k, axis=-2), k, axis=-1)
    return out[..., : shape[0], : shape[1]]
