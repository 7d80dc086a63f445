"""Working-grid downsampling (x K): mean of valid pixels for inputs, centre pixel for charts.

Used by preprocessing (store at 80K m) and by inference (a model trained at x K sees its inputs
downsampled the same way, and its charts are repeated back to 80 m). Partial blocks at the
right and bottom edges are kept (the working grid is ``ceil(N / K)``).
"""

from __future__ import annotations

import numpy as np

from seaice_mlflow.tasks.autoice.charts import IGNORE_INDEX


def working_shape(shape: tuple[int, int], downsample: int) -> tuple[int, int]:
    return (-(-shape[0] // downsample), -(-shape[1] // downsample))


def _blocks(values: np.ndarray, k: int, fill) -> np.ndarray:
    """(..., H, W) -> (..., h, k, w, k), padding the partial edge blocks with ``fill``."""
    h, w = working_shape(values.shape[-2:], k)
    pad = [(0, 0)] * (values.ndim - 2) + [(0, h * k - values.shape[-2]), (0, w * k - values.shape[-1])]
    padded = np.pad(values, pad, constant_values=fill)
    return padded.reshape(*values.shape[:-2], h, k, w, k)


def downsample_valid(valid: np.ndarray, k: int) -> np.ndarray:
    """A working pixel is valid when any of its 80 m pixels is."""
    if k == 1:
        return valid.copy()
    return _blocks(valid, k, False).any(axis=(-3, -1))


def downsample_mean(values: np.ndarray, k: int, valid: np.ndarray | None = None) -> np.ndarray:
    """Block mean over the ``valid`` pixels (all pixels when None); 0 where a block has none.

    ``values`` is (..., H, W); ``valid`` (H, W) applies to every leading channel. At ``k = 1`` the
    values are returned as they are: the readers already hold 0 wherever SAR is invalid.
    """
    values = np.asarray(values, dtype=np.float32)
    if k == 1:
        return values
    if valid is None:  # every pixel counts: a block's count is its size (smaller at the edges)
        total = _blocks(values, k, 0).sum(axis=(-3, -1))
        rows, cols = (np.minimum(k, n - k * np.arange(m)) for n, m in zip(values.shape[-2:], total.shape[-2:]))
        return (total / np.outer(rows, cols)).astype(np.float32)
    weights = _blocks(valid, k, False).astype(np.float32)
    total = (_blocks(values, k, 0) * weights).sum(axis=(-3, -1))
    count = weights.sum(axis=(-3, -1))
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0).astype(np.float32)


def downsample_chart(chart: np.ndarray, k: int) -> np.ndarray:
    """The chart at each block's centre pixel (nearest neighbour), 255 past the scene edge."""
    if k == 1:
        return chart.copy()
    blocks = _blocks(chart, k, IGNORE_INDEX)
    return blocks[..., :, k // 2, :, k // 2]
