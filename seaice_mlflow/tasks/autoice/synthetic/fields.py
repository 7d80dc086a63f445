"""Smooth Gaussian random fields that can be evaluated on any window of a scene.

A field is a cubic B-spline whose coefficients are white noise on a grid ``scale`` pixels apart;
evaluation is separable (two sparse matrix products), so a strip of a 5000 x 5200 scene costs
milliseconds and any window gives the same values as the whole scene (strip-size independent).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


def _bspline_weights(x: np.ndarray, n_coeffs: int) -> sparse.csr_matrix:
    """Cubic B-spline weight matrix (len(x), n_coeffs), rows normalised to unit variance."""
    base = np.floor(x).astype(np.int64)
    t = x - base
    w = np.stack(
        [
            (1 - t) ** 3 / 6,
            (3 * t**3 - 6 * t**2 + 4) / 6,
            (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6,
            t**3 / 6,
        ],
        axis=1,
    )
    w /= np.sqrt((w**2).sum(axis=1, keepdims=True))  # white coefficients -> unit variance
    cols = base[:, None] + np.arange(-1, 3)[None, :]
    rows = np.repeat(np.arange(len(x)), 4)
    return sparse.csr_matrix((w.ravel(), (rows, cols.ravel())), shape=(len(x), n_coeffs))


class SmoothField:
    """Stationary random field, unit variance, correlation length about ``scale`` pixels."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int], scale: float):
        self.scale = max(float(scale), 0.5)
        n = (int(np.ceil(shape[0] / self.scale)) + 4, int(np.ceil(shape[1] / self.scale)) + 4)
        self.coeffs = rng.standard_normal(n).astype(np.float32)

    def sample(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Field values (len(rows), len(cols)) float32 at pixel coordinates ``rows`` x ``cols``."""
        r = _bspline_weights(np.asarray(rows, float) / self.scale + 1.5, self.coeffs.shape[0])
        c = _bspline_weights(np.asarray(cols, float) / self.scale + 1.5, self.coeffs.shape[1])
        return np.asarray((c @ (r @ self.coeffs).T).T, dtype=np.float32)

    def window(self, row: int, height: int, width: int) -> np.ndarray:
        """Values on full-width rows ``[row, row + height)`` of the pixel grid."""
        return self.sample(np.arange(row, row + height), np.arange(width))


def octaves(
    rng: np.random.Generator, shape: tuple[int, int], scales: tuple[float, ...], weights: tuple[float, ...]
) -> list[tuple[SmoothField, float]]:
    """A few fields at different scales, to be summed with ``weights`` (fractal-looking detail)."""
    return [(SmoothField(rng, shape, s), w) for s, w in zip(scales, weights)]


def sample_sum(fields: list[tuple[SmoothField, float]], rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Weighted sum of several fields at ``rows`` x ``cols``."""
    out = np.zeros((len(rows), len(cols)), dtype=np.float32)
    for field, weight in fields:
        out += weight * field.sample(rows, cols)
    return out
