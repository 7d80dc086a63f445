"""Patch sampling: determinism, resume, augmentation alignment, rejection, class balance, padding, filters."""

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.core.tiling import Window
from seaice_mlflow.tasks.autoice import store as store_module
from seaice_mlflow.tasks.autoice.augment import Augment
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES, IGNORE_INDEX
from seaice_mlflow.tasks.autoice.files.variables import (
    COARSE_VARIABLES,
    GLOBAL_MEAN_STD,
    SAR_VARIABLES,
    SCENE_VARIABLES,
)
from seaice_mlflow.tasks.autoice.patches import PatchDataset, PatchLoader, PatchOptions
from seaice_mlflow.tasks.autoice.scene import Scene
from seaice_mlflow.tasks.autoice.store import STORE_SCHEMA, Store, write_manifest, write_scene

STEP = 0.01  # a multiple of the store's int16 packing step: exact round trip


def labelled_scene(scene_id: str, shape=(120, 150), seed=0) -> Scene:
    """A scene whose HH/HV/IA channels spell out SIC/SOD/FLOE, so misalignment shows."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 11, (shape[0] // 10 + 1, shape[1] // 10 + 1))
    sic = np.kron(blocks, np.ones((10, 10), int))[: shape[0], : shape[1]].astype(np.uint8)
    sic[:, :20] = IGNORE_INDEX  # a masked band (land / off swath)
    sod = np.where(sic == IGNORE_INDEX, IGNORE_INDEX, np.minimum(sic // 2, 4)).astype(np.uint8)
    sod[-30:-20, -30:-20] = 5  # old ice: one small floe in the whole scene
    floe = np.where(sic == IGNORE_INDEX, IGNORE_INDEX, np.minimum(sic // 2, 6)).astype(np.uint8)
    return chart_scene(scene_id, sic, sod, floe)


def chart_scene(scene_id: str, sic, sod, floe, distance_map=None) -> Scene:
    """A scene of these charts whose HH/HV/IA spell them out; ``distance_map`` z-scores (default 1: no land)."""
    shape = sic.shape

    def spell(chart):
        return np.where(chart == IGNORE_INDEX, 0, (chart.astype(np.float32) + 1) * STEP)

    sar = {
        "nersc_sar_primary": spell(sic),
        "nersc_sar_secondary": spell(sod),
        "sar_incidenceangle": spell(floe),
        "distance_map": np.ones(shape, np.float32) if distance_map is None else distance_map,
    }
    coarse_shape = (max(shape[0] // 25, 1), max(shape[1] // 25, 1))
    coarse = {name: np.full(coarse_shape, i, np.float32) for i, name in enumerate(COARSE_VARIABLES)}
    grid = np.add.outer(np.linspace(60, 62, 21), np.zeros(21))
    return Scene(
        scene_id,
        "dmi",
        datetime(2020, 3, 1),
        "ready",
        Path(f"{scene_id}_prep.nc"),
        sar,
        coarse,
        grid,
        grid.T - 40,
        {"SIC": sic, "SOD": sod, "FLOE": floe},
    )


def write_store(root: Path, scenes: list[Scene], downsample: int = 1) -> Store:
    """A store of ``scenes``, all training scenes."""
    records = [{**write_scene(root, scene, SCENE_VARIABLES, downsample, {}), "split": "train"} for scene in scenes]
    write_manifest(
        root,
        {
            "schema_version": STORE_SCHEMA,
            "parameters": {"downsample": downsample, "variables": list(SCENE_VARIABLES)},
            "scenes": records,
        },
    )
    return Store(root)


LABELLED = ("20200301T000000_dmi", "20200302T000000_dmi")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    return write_store(
        tmp_path_factory.mktemp("labelled-store"), [labelled_scene(s, seed=i) for i, s in enumerate(LABELLED)]
    )


def options(**kwargs) -> PatchOptions:
    return PatchOptions(**{"patch_size": 64, "variables": SCENE_VARIABLES + ("month", "sin_lat"), **kwargs})


def test_sample_format(store):
    sample = PatchDataset(store, options())[3]
    assert sample["image"].shape == (26, 64, 64) and sample["image"].dtype == torch.float32
    for chart in CHART_NAMES:
        assert sample[chart].shape == (64, 64) and sample[chart].dtype == torch.uint8


def test_augmentations_keep_inputs_and_charts_aligned(store):
    dataset = PatchDataset(store, options(augment=Augment()))
    batches = PatchLoader(dataset, batch_size=8, workers=0)
    for batch in batches.epoch(0, 6):
        image = batch["image"].numpy()
        for k, chart in enumerate(CHART_NAMES):
            labels = batch[chart].numpy()
            expected = np.where(labels == IGNORE_INDEX, 0, (labels.astype(np.float32) + 1) * STEP)
            np.testing.assert_allclose(image[:, k], expected, atol=1e-6, err_msg=chart)


def test_deterministic_whatever_the_workers(store):
    dataset = PatchDataset(store, options(), seed=4)
    serial = [{k: v.clone() for k, v in b.items()} for b in PatchLoader(dataset, 4, workers=0).epoch(1, 3)]
    parallel = [{k: v.clone() for k, v in b.items()} for b in PatchLoader(dataset, 4, workers=2).epoch(1, 3)]
    for a, b in zip(serial, parallel):
        for key in a:
            assert torch.equal(a[key], b[key]), key
    assert torch.equal(dataset[17]["image"], dataset[17]["image"])
    other_seed = PatchDataset(store, options(), seed=5)
    assert not torch.equal(dataset[17]["image"], other_seed[17]["image"])


def test_resume_continues_the_epoch(store):
    loader = PatchLoader(PatchDataset(store, options()), 4, workers=0)
    full = [b["index"].clone() for b in loader.epoch(2, 5)]
    resumed = [b["index"].clone() for b in loader.epoch(2, 5, skip=3)]
    assert len(resumed) == 2 and all(torch.equal(a, b) for a, b in zip(full[3:], resumed))
    assert full[0][0] == 2 * 5 * 4  # epoch 2 starts at sample 40


def test_rejection_rule(store):
    dataset = PatchDataset(store, options(min_valid=0.9, augment=Augment.parse("none")))
    for index in range(30):
        sic = dataset[index]["SIC"]
        assert (sic != IGNORE_INDEX).float().mean() >= 0.9


def test_class_balanced_sampling_finds_rare_classes(tmp_path):
    store = write_store(tmp_path, [labelled_scene("20200304T000000_dmi", shape=(400, 500))])

    def patches_with_old_ice(balance):
        dataset = PatchDataset(
            store, options(patch_size=32, class_balance=balance, min_valid=0, augment=Augment.parse("none"))
        )
        return sum(bool((dataset[i]["SOD"] == 5).any()) for i in range(200))

    assert patches_with_old_ice(1.0) > 4 * max(patches_with_old_ice(0.0), 1)


def test_scene_smaller_than_patch_is_padded(tmp_path):
    store = write_store(tmp_path, [labelled_scene("20200303T000000_dmi", shape=(50, 60))])
    dataset = PatchDataset(store, options(patch_size=80, min_valid=0, augment=Augment.parse("none")))
    sample = dataset[0]
    assert (sample["SIC"][50:] == IGNORE_INDEX).all() and (sample["SIC"][:, 60:] == IGNORE_INDEX).all()
    assert (sample["image"][:, 50:] == 0).all()


def test_augment_spec_parsing():
    assert Augment.parse("flip,rot90").spec() == "flip,rot90"
    assert Augment.parse("all").spec() == "flip,rot90,scale,cutmix"
    with pytest.raises(ValueError, match="unknown augmentation"):
        Augment.parse("mixup")
    assert SAR_VARIABLES[0] == "nersc_sar_primary"


# --- patch filters (IceBench's data preparation) --------------------------------------------------


def two_polygon_scene(scene_id: str, shape=(64, 64), land=None) -> Scene:
    """Two chart polygons split by a curve (one SIC/SOD/FLOE class each), a masked band (the
    swath edge: no border) on the left, and ``land`` (a bool mask: zone 0, charts 255) if given."""
    rows, cols = np.indices(shape)
    right = cols > shape[1] // 2 + 8 * np.sin(rows / 9)
    sic = np.where(right, 9, 3).astype(np.uint8)
    sod = np.where(right, 4, 1).astype(np.uint8)
    floe = np.where(right, 2, 5).astype(np.uint8)
    masked = cols < 6 if land is None else land
    for chart in (sic, sod, floe):
        chart[masked] = IGNORE_INDEX
    mean, std = GLOBAL_MEAN_STD["distance_map"]
    zone = np.where(land, 0, 5) if land is not None else np.full(shape, 5)
    return chart_scene(scene_id, sic, sod, floe, ((zone - mean) / std).astype(np.float32))


def near_border(scene: Scene, distance: int) -> np.ndarray:
    """Pixels closer than ``distance`` to the border of the two polygons, by scipy: the border
    pixels are the pixels of one polygon next to (4-connected) a pixel of the other."""
    sic = scene.charts["SIC"]
    left, right = sic == 3, sic == 9
    border = (left & ndimage.binary_dilation(right)) | (right & ndimage.binary_dilation(left))
    return ndimage.distance_transform_edt(~border) < distance


UNAUGMENTED = dict(augment=Augment.parse("none"), min_valid=0.0)


@pytest.mark.parametrize("distance", [1, 3, 10])
def test_border_filter_masks_exactly_the_pixels_near_a_polygon_border(tmp_path, distance):
    scene = two_polygon_scene("20200305T000000_dmi")
    store = write_store(tmp_path, [scene])  # a 64 px patch of a 64 x 64 scene is the whole scene
    dataset = PatchDataset(store, options(border_distance=distance, **UNAUGMENTED))
    near = near_border(scene, distance)
    assert near.any() and not near.all()
    sample = dataset[0]
    for chart in CHART_NAMES:
        expected = np.where(near, IGNORE_INDEX, scene.charts[chart])
        np.testing.assert_array_equal(sample[chart].numpy(), expected, err_msg=chart)
    off = PatchDataset(store, options(**UNAUGMENTED))[0]  # the inputs are left alone
    assert torch.equal(sample["image"], off["image"])
    assert torch.equal(off["SIC"], torch.from_numpy(scene.charts["SIC"]))


def test_border_layer_is_the_80m_distance_at_each_store_pixel(tmp_path):
    scene = two_polygon_scene("20200306T000000_dmi")
    sic = scene.charts["SIC"]
    border = (sic == 3) & ndimage.binary_dilation(sic == 9) | (sic == 9) & ndimage.binary_dilation(sic == 3)
    expected = np.minimum(ndimage.distance_transform_edt(~border), 255).astype(np.uint8)
    full = write_store(tmp_path / "x1", [scene]).scenes()[0]
    np.testing.assert_array_equal(full.read_layer("border", Window.full(full.shape)), expected)
    half = write_store(tmp_path / "x2", [scene], downsample=2).scenes()[0]  # the centre pixel, as charts
    np.testing.assert_array_equal(half.read_layer("border", Window.full(half.shape)), expected[1::2, 1::2])


def test_min_valid_counts_the_pixels_left_after_the_border_mask(tmp_path):
    store = write_store(tmp_path, [two_polygon_scene("20200307T000000_dmi", shape=(120, 150))])
    dataset = PatchDataset(store, options(patch_size=32, border_distance=6, min_valid=0.9, augment=Augment()))
    for index in range(40):
        assert (dataset[index]["SIC"] != IGNORE_INDEX).float().mean() >= 0.9


def test_land_exclusion_draws_patches_without_land(tmp_path):
    shape = (120, 150)
    rows, cols = np.indices(shape)
    land = (rows < 50) & (cols < 60) | (rows > 100)
    store = write_store(tmp_path, [two_polygon_scene("20200308T000000_dmi", shape, land=land)])
    np.testing.assert_array_equal(store.scenes()[0].read_layer("land", Window.full(shape)), land)
    mean, std = GLOBAL_MEAN_STD["distance_map"]
    channel = SCENE_VARIABLES.index("distance_map")

    def patches_with_land(rule):
        dataset = PatchDataset(store, options(patch_size=32, land=rule, **UNAUGMENTED))
        return sum(bool((dataset[i]["image"][channel] * std + mean < 0.5).any()) for i in range(60))

    assert patches_with_land("include") > 20 and patches_with_land("exclude") == 0


def test_filters_off_keep_batches_bit_identical_and_old_stores_readable(tmp_path, monkeypatch):
    scenes = [labelled_scene(s, seed=i) for i, s in enumerate(LABELLED)]
    new = write_store(tmp_path / "new", scenes)
    with monkeypatch.context() as patch:  # a store of the version before the filter layers
        patch.setattr(store_module, "LAYERS", ())
        old = write_store(tmp_path / "old", scenes)
    for record in old.manifest["scenes"]:
        del record["layers"]
    write_manifest(old.root, old.manifest)
    old = Store(old.root)
    for settings in ({}, {"class_balance": 0.5, "min_valid": 0.6}, {"border_distance": 0, "land": "include"}):
        batches = [
            PatchLoader(PatchDataset(s, options(**settings), seed=3), 4, workers=0).epoch(1, 3) for s in (new, old)
        ]
        for a, b in zip(*batches):
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ParameterError, match="--border-distance.*`seaice preprocess --overwrite`"):
        PatchDataset(old, options(border_distance=10))
    with pytest.raises(ParameterError, match="--land.*`seaice preprocess --overwrite`"):
        PatchDataset(old, options(land="exclude"))
