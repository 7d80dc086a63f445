"""The per-pixel baseline an optical model must beat: gradient boosting on each pixel's colour and local texture.

Every pixel is described by the RGB photo alone: its colour (RGB, HSV and normalised chromaticity)
and the texture of its neighbourhood (local mean and standard deviation of brightness in square
windows of :data:`WINDOWS` pixels, gradient magnitude and its local mean). No position in the
photo (row, distance to the horizon) and no shapes: what the synthetic photos' design says a
network's context adds (sky against ice-white overcast, dark level ice against water, ponds) is the
gap between this and a CNN on the same held-out photos. :func:`fit_within_budget` fits the
classifier on as many labelled pixels as a wall-time budget allows, for comparisons at equal time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from seaice_mlflow.tasks.optical.labels import IGNORE, ClassTable
from seaice_mlflow.tasks.optical.readers import Photo, read_pair

#: Side lengths (pixels) of the square windows of the texture features.
WINDOWS = (3, 9, 27)
#: Names of the per-pixel features, in the order of :func:`pixel_features`' last axis.
FEATURES: tuple[str, ...] = (
    ("red", "green", "blue", "hue", "saturation", "value", "chroma_red", "chroma_green")
    + tuple(f"{stat}_{w}" for w in WINDOWS for stat in ("mean", "std"))
    + ("gradient", f"gradient_mean_{WINDOWS[1]}")
)
#: Pixels classified per call of the booster (bounds the memory of a large photo's features).
CHUNK = 1 << 19
#: Share of the budget the next fit is aimed at, predicted from the last at linear cost.
GROWTH_MARGIN = 0.85
#: Smallest growth of the sample worth another fit.
MIN_GROWTH = 1.25


def pixel_features(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel features (H, W, len(FEATURES)) float32 of a uint8 RGB photo (H, W, 3)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"expected an RGB photo (H, W, 3), got an array of shape {rgb.shape}")
    x = rgb.astype(np.float32) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    value, low = x.max(axis=-1), x.min(axis=-1)
    spread = value - low
    saturation = np.where(value > 0, spread / np.maximum(value, 1e-6), 0.0)
    safe = np.maximum(spread, 1e-6)
    hue = (
        np.select(
            [spread == 0, value == r, value == g],
            [0.0, ((g - b) / safe) % 6.0, (b - r) / safe + 2.0],
            (r - g) / safe + 4.0,
        )
        / 6.0
    )
    total = np.maximum(r + g + b, 1e-6)
    brightness = (r + g + b) / 3.0
    square = brightness * brightness
    texture = []
    for w in WINDOWS:
        mean = ndimage.uniform_filter(brightness, w)
        texture += [mean, np.sqrt(np.maximum(ndimage.uniform_filter(square, w) - mean * mean, 0.0))]
    gradient = np.hypot(ndimage.sobel(brightness, axis=0), ndimage.sobel(brightness, axis=1))
    channels = [r, g, b, hue, saturation, value, r / total, g / total, *texture, gradient]
    channels.append(ndimage.uniform_filter(gradient, WINDOWS[1]))
    return np.stack(channels, axis=-1).astype(np.float32)


def pixel_table(
    photos: Sequence[Photo], table: ClassTable, n_pixels: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random labelled pixels (255 left out) of the photos, read one at a time: features (n, F) and
    class indices (n,), at most ``n_pixels`` in all, the same number from each photo where it has them."""
    photos = [p for p in photos if p.label is not None]
    if not photos:
        raise ValueError("no labelled photo to fit the per-pixel baseline on")
    per_photo = max(1, n_pixels // len(photos))
    xs, ys = [], []
    for photo in photos:
        rgb, label = read_pair(photo, table)
        labelled = np.flatnonzero(label.ravel() != IGNORE)
        pick = np.sort(rng.choice(labelled, size=min(per_photo, labelled.size), replace=False))
        xs.append(pixel_features(rgb).reshape(-1, len(FEATURES))[pick])
        ys.append(label.ravel()[pick])
    return np.concatenate(xs), np.concatenate(ys)


@dataclass
class PixelClassifier:
    """A fitted per-pixel classifier: photo -> class indices of its table (``threads``: OpenMP threads
    of the booster, None for all cores)."""

    model: HistGradientBoostingClassifier
    n_classes: int
    threads: int | None = None

    def predict_photo(self, rgb: np.ndarray) -> np.ndarray:
        """Class indices (H, W) uint8 of a uint8 RGB photo (H, W, 3)."""
        features = pixel_features(rgb).reshape(-1, len(FEATURES))
        out = np.empty(features.shape[0], np.uint8)
        with threadpool_limits(self.threads):
            for start in range(0, features.shape[0], CHUNK):
                out[start : start + CHUNK] = self.model.predict(features[start : start + CHUNK])
        return out.reshape(np.shape(rgb)[:2])


def fit_pixel_classifier(
    x: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0, max_iter: int = 200, threads: int | None = None
) -> PixelClassifier:
    """Gradient boosting on the feature rows ``x`` and class indices ``y`` (early stopping on 10 % of them)."""
    model = HistGradientBoostingClassifier(
        max_iter=max_iter, early_stopping=True, validation_fraction=0.1, random_state=seed
    )
    with threadpool_limits(threads):
        model.fit(x, y)
    return PixelClassifier(model, n_classes, threads)


@dataclass(frozen=True)
class BudgetFit:
    """The classifier fitted within the budget, its training pixels and fit seconds, every fit tried
    (pixels, seconds) and the seconds spent in all (reading the photos and every fit)."""

    classifier: PixelClassifier
    pixels: int
    seconds: float
    tried: tuple[tuple[int, float], ...]
    total_seconds: float


def fit_within_budget(
    photos: Sequence[Photo],
    table: ClassTable,
    budget_s: float,
    seed: int = 0,
    start_pixels: int = 20_000,
    max_pixels: int = 4_000_000,
    max_iter: int = 200,
    growth: float = 2.0,
    threads: int | None = None,
) -> BudgetFit:
    """The classifier fitted on the largest pixel sample whose fit takes at most about ``budget_s`` seconds.

    The sample grows ``growth`` times from ``start_pixels`` (each one holds the previous: the first
    rows of one shuffled table of up to ``max_pixels`` labelled pixels), or less when the last fit's
    time, scaled linearly, says a grown one would take more than :data:`GROWTH_MARGIN` of the budget;
    it stops when it cannot grow by :data:`MIN_GROWTH`. A fit that overruns the budget is dropped
    for the one before (the first fit is kept whatever it takes). The fits sum to about
    ``growth / (growth - 1)`` budgets. The pixels drawn are deterministic for a seed; the sample
    sizes follow the measured seconds.
    """
    if budget_s <= 0:
        raise ValueError(f"the wall-time budget must be positive, got {budget_s} s")
    if growth < MIN_GROWTH:
        raise ValueError(f"the sample must grow at least {MIN_GROWTH} times a step, got {growth}")
    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    x, y = pixel_table(photos, table, max_pixels, rng)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    n = min(start_pixels, len(y))
    kept: tuple[PixelClassifier, int, float] | None = None
    tried: list[tuple[int, float]] = []
    while True:
        clock = time.perf_counter()
        classifier = fit_pixel_classifier(x[:n], y[:n], len(table.classes), seed, max_iter, threads)
        seconds = time.perf_counter() - clock
        tried.append((n, seconds))
        if kept is not None and seconds > budget_s:
            break
        kept = (classifier, n, seconds)
        following = min(int(growth * n), int(GROWTH_MARGIN * n * budget_s / max(seconds, 1e-3)), len(y))
        if following < MIN_GROWTH * n:
            break
        n = following
    return BudgetFit(kept[0], kept[1], kept[2], tuple(tried), time.perf_counter() - began)
