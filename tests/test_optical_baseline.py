"""The optical per-pixel baseline: colour and texture features, a seeded fit, a fit within a wall-time budget.

The booster runs on one thread: OpenMP threads on a CPU shared with other processes can slow it tenfold.
"""

from __future__ import annotations

import numpy as np
import pytest

from seaice_mlflow.tasks.optical.baseline import (
    FEATURES,
    fit_pixel_classifier,
    fit_within_budget,
    pixel_features,
    pixel_table,
)
from seaice_mlflow.tasks.optical.readers import open_folder, read_pair
from seaice_mlflow.tasks.optical.synthetic import synthesize_photos


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three synthetic photos of 64 x 96 px, all for training."""
    out = tmp_path_factory.mktemp("photos")
    synthesize_photos(out, n_images=3, size=(64, 96), seed=7)
    return open_folder(out, val_fraction=0.0)


def test_features_are_float32_per_pixel_and_see_colour_and_texture():
    rng = np.random.default_rng(0)
    flat = np.full((40, 50, 3), 128, np.uint8)
    noisy = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    for rgb in (flat, noisy):
        features = pixel_features(rgb)
        assert features.shape == (40, 50, len(FEATURES)) and features.dtype == np.float32
        assert np.isfinite(features).all()
    flat_features = pixel_features(flat)
    texture = [i for i, name in enumerate(FEATURES) if name.startswith(("std_", "gradient"))]
    assert np.allclose(flat_features[..., texture], 0, atol=1e-5)  # no texture in a flat grey
    assert (pixel_features(noisy)[5:-5, 5:-5][..., texture] > 0.01).all()
    red = pixel_features(np.tile(np.array([200, 20, 20], np.uint8), (8, 8, 1)))
    assert red[0, 0, FEATURES.index("hue")] == pytest.approx(0.0) and red[0, 0, FEATURES.index("chroma_red")] > 0.8
    with pytest.raises(ValueError, match="RGB photo"):
        pixel_features(np.zeros((8, 8), np.uint8))


def test_fit_and_predict_give_class_indices_of_the_photo_and_repeat_per_seed(folder):
    n_classes = len(folder.table.classes)
    x, y = pixel_table(folder.photos, folder.table, 6000, np.random.default_rng(1))
    assert x.shape == (len(y), len(FEATURES)) and len(y) <= 6000 and (y < n_classes).all()
    first = fit_pixel_classifier(x, y, n_classes, seed=3, max_iter=15, threads=1)
    rgb, label = read_pair(folder.photos[0], folder.table)
    predicted = first.predict_photo(rgb)
    assert predicted.shape == label.shape and predicted.dtype == np.uint8
    assert set(np.unique(predicted)) <= set(range(n_classes))
    keep = label != 255
    assert (predicted[keep] == label[keep]).mean() > 0.3  # far better than one class in ten
    again = pixel_table(folder.photos, folder.table, 6000, np.random.default_rng(1))
    assert np.array_equal(again[0], x) and np.array_equal(again[1], y)
    second = fit_pixel_classifier(*again, n_classes, seed=3, max_iter=15, threads=1)
    assert np.array_equal(second.predict_photo(rgb), predicted)


def test_the_budget_fit_grows_the_sample_and_keeps_a_fit_within_the_budget(folder):
    budget = 1.5
    fit = fit_within_budget(folder.photos, folder.table, budget, seed=0, start_pixels=1000, max_iter=10, threads=1)
    sizes = [n for n, _ in fit.tried]
    assert sizes == sorted(set(sizes)) and sizes[0] == 1000 and fit.pixels in sizes
    assert fit.seconds <= budget or fit.pixels == sizes[0]
    assert fit.total_seconds < 20 * budget  # the sample doubles at most: the fits sum to a few budgets
    rgb, _ = read_pair(folder.photos[1], folder.table)
    assert fit.classifier.predict_photo(rgb).shape == rgb.shape[:2]
    with pytest.raises(ValueError, match="budget must be positive"):
        fit_within_budget(folder.photos, folder.table, 0.0)
