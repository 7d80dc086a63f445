"""Grids of a scene: windows, the 2 km -> SAR-grid upsampling, tie points, encodings, input stacks.

A scene is seen on its working grid: the 80 m grid downsampled ``downsample`` times (1 = 80 m).
Model inputs are assembled here for any window of any scene source (an in-memory
:class:`~seaice_mlflow.tasks.autoice.scene.Scene` or a scene of the training store), so that the patch
sampler, full-scene inference and the naive reference loader all see exactly the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from seaice_mlflow.core.tiling import Window
from seaice_mlflow.tasks.autoice.files.nonfinite import require_finite
from seaice_mlflow.tasks.autoice.files.variables import COARSE_FACTOR, COARSE_VARIABLES, SAR_VARIABLES


class SceneSource(Protocol):
    """What :func:`assemble_inputs` needs from a scene (in memory or in the store)."""

    shape: tuple[int, int]  # working grid
    full_shape: tuple[int, int]  # 80 m grid
    coarse_shape: tuple[int, int]
    downsample: int
    latitude: np.ndarray
    longitude: np.ndarray
    month: int

    def read_sar(self, names: Sequence[str], window: Window) -> Mapping[str, np.ndarray]: ...

    def read_coarse(self, names: Sequence[str], rows: slice, cols: slice) -> Mapping[str, np.ndarray]: ...


def pixel_centres(start: int, stop: int, downsample: int = 1) -> np.ndarray:
    """80 m pixel coordinate of the centre of working-grid pixels ``[start, stop)``."""
    return np.arange(start, stop) * downsample + (downsample - 1) / 2


def coarse_indices(start: int, stop: int, n_coarse: int, downsample: int = 1) -> np.ndarray:
    """Index of the 2 km cell under each working-grid pixel in ``[start, stop)``.

    Cell k covers 80 m pixels ``[25k, 25(k+1))`` exactly; pixels past the last full cell (the
    grid has ``floor(N/25)`` cells) belong to the last cell.
    """
    cells = pixel_centres(start, stop, downsample) // COARSE_FACTOR
    return np.minimum(cells.astype(np.int64), n_coarse - 1)


def linear_weights(positions: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Matrix W (len(query), len(positions)) with ``W @ f`` the piecewise-linear interpolation of f.

    Outside the tie points the end segments are extended linearly.
    """
    positions = np.asarray(positions, dtype=np.float64)
    query = np.asarray(query, dtype=np.float64)
    k = np.clip(np.searchsorted(positions, query, side="right") - 1, 0, len(positions) - 2)
    t = (query - positions[k]) / (positions[k + 1] - positions[k])
    weights = np.zeros((len(query), len(positions)))
    rows = np.arange(len(query))
    weights[rows, k] = 1.0 - t
    weights[rows, k + 1] = t
    return weights


def interpolate_grid(
    grid: np.ndarray,
    line_positions: Sequence[float],
    sample_positions: Sequence[float],
    rows: np.ndarray,
    cols: np.ndarray,
) -> np.ndarray:
    """Bilinear interpolation of a tie-point grid at pixel coordinates ``rows`` x ``cols`` (float64)."""
    weights_rows = linear_weights(line_positions, rows)
    weights_cols = linear_weights(sample_positions, cols)
    return weights_rows @ np.asarray(grid, dtype=np.float64) @ weights_cols.T


def tie_point_values(
    grid: np.ndarray, full_shape: tuple[int, int], lines: np.ndarray, samples: np.ndarray
) -> np.ndarray:
    """A 21 x 21 tie-point grid (axis 0 along lines, spanning the 80 m scene evenly from the first
    to the last line and sample) interpolated at 80 m coordinates ``lines`` x ``samples``."""
    return interpolate_grid(
        grid,
        np.linspace(0, full_shape[0] - 1, np.shape(grid)[0]),
        np.linspace(0, full_shape[1] - 1, np.shape(grid)[1]),
        lines,
        samples,
    )


def tie_point_field(
    grid: np.ndarray, full_shape: tuple[int, int], window: Window | None = None, downsample: int = 1
) -> np.ndarray:
    """:func:`tie_point_values` on ``window`` of the working grid."""
    window = window or Window.full((-(-full_shape[0] // downsample), -(-full_shape[1] // downsample)))
    return tie_point_values(
        grid,
        full_shape,
        pixel_centres(window.row, window.row + window.height, downsample),
        pixel_centres(window.col, window.col + window.width, downsample),
    )


def month_encoding(month: int) -> float:
    """Month 1..12 mapped to [-1, 1] as in MMSeaIce (2 m / 11 - 1 with m = 0..11)."""
    return 2.0 * (month - 1) / 11.0 - 1.0


def take_window(
    values: np.ndarray, rows: np.ndarray, cols: np.ndarray, transpose: bool = False, out: np.ndarray | None = None
) -> np.ndarray:
    """``values[rows][:, cols]`` (2-D), or its transpose, written into ``out`` if given; two
    ``np.take`` passes are several times faster than fancy indexing with both index arrays
    (``mode="clip"`` lets numpy write ``out`` directly; the indices are in range anyway)."""
    if transpose:
        values, rows, cols = values.T, cols, rows
    return np.take(np.take(values, rows, axis=0, mode="clip"), cols, axis=1, out=out, mode="clip")


def scene_label(source: SceneSource) -> str:
    """How an error names a scene source: its scene id when it has one."""
    scene_id = getattr(source, "scene_id", None) or getattr(getattr(source, "scene", None), "scene_id", None)
    return f"scene {scene_id}" if scene_id else "the scene"


def assemble_inputs(
    source: SceneSource,
    variables: Sequence[str],
    window: Window | None = None,
    *,
    rows: np.ndarray | None = None,
    cols: np.ndarray | None = None,
    transpose: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Model input stack (C, h, w) float32 for ``window``, channels in the order of ``variables``.

    80 m variables are read for the window only, 2 km variables for the cells under it (upsampled
    exactly, 25 80 m pixels per cell), encodings computed from the tie points and month. What is read
    must be finite (:func:`~.files.nonfinite.require_finite`, the final guard before a network: the
    readers mask or fill values that are not). It checks what was read, not the assembled stack,
    and skips the SAR of a source whose ``finite_sar`` says it cannot hold such values (the training
    store's packed int16): on the 2-core VM checking the four 256 x 256 SAR windows of a training
    patch cost 0.2-0.3 ms of the ~3.3 ms that assembling it takes.

    ``rows``/``cols`` say which window row/column each output row/column shows (default: all, in
    order; repeats, reversals and zooms are index maps), ``transpose`` swaps the output axes; so a
    patch is flipped, turned and zoomed while it is written, in one pass (into ``out`` if given).
    """
    window = window or Window.full(source.shape)
    rows = np.arange(window.height) if rows is None else np.asarray(rows)
    cols = np.arange(window.width) if cols is None else np.asarray(cols)
    shape = (len(cols), len(rows)) if transpose else (len(rows), len(cols))
    if out is None:
        out = np.empty((len(variables), *shape), dtype=np.float32)
    sar_names = [v for v in variables if v in SAR_VARIABLES]
    coarse_names = [v for v in variables if v in COARSE_VARIABLES]
    sar = source.read_sar(sar_names, window) if sar_names else {}
    if not getattr(source, "finite_sar", False):
        require_finite(sar, scene_label(source))
    if coarse_names:
        cell_rows = coarse_indices(window.row, window.row + window.height, source.coarse_shape[0], source.downsample)
        cell_cols = coarse_indices(window.col, window.col + window.width, source.coarse_shape[1], source.downsample)
        coarse = source.read_coarse(
            coarse_names, slice(cell_rows[0], cell_rows[-1] + 1), slice(cell_cols[0], cell_cols[-1] + 1)
        )
        require_finite(coarse, scene_label(source))
        cell_rows, cell_cols = (cell_rows - cell_rows[0])[rows], (cell_cols - cell_cols[0])[cols]
    encodings = {}
    if any(v in ("sin_lat", "cos_lat", "sin_lon", "cos_lon") for v in variables):
        lines = pixel_centres(window.row, window.row + window.height, source.downsample)[rows]
        samples = pixel_centres(window.col, window.col + window.width, source.downsample)[cols]
        for grid, scale, sin, cos in (
            (source.latitude, 90.0, "sin_lat", "cos_lat"),
            (source.longitude, 180.0, "sin_lon", "cos_lon"),
        ):
            if sin in variables or cos in variables:
                field = np.pi / scale * tie_point_values(grid, source.full_shape, lines, samples)
                field = field.T if transpose else field
                encodings[sin], encodings[cos] = np.sin(field), np.cos(field)
    identity = (
        not transpose
        and np.array_equal(rows, np.arange(window.height))
        and np.array_equal(cols, np.arange(window.width))
    )
    for i, name in enumerate(variables):
        if name in sar:
            if identity:
                out[i] = sar[name]
            else:
                take_window(sar[name], rows, cols, transpose, out=out[i])
        elif name in coarse_names:
            take_window(coarse[name], cell_rows, cell_cols, transpose, out=out[i])
        elif name == "month":
            out[i] = month_encoding(source.month)
        elif name in encodings:
            out[i] = encodings[name]
        else:
            raise KeyError(f"unknown input variable {name!r}")
    return out
