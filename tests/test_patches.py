"""Patch sampling: determinism, resume, augmentation alignment, rejection, class balance, padding."""

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from seaice_mlflow.tasks.autoice.augment import Augment
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES, IGNORE_INDEX
from seaice_mlflow.tasks.autoice.files.variables import COARSE_VARIABLES, SAR_VARIABLES, SCENE_VARIABLES
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

    def spell(chart):
        return np.where(chart == IGNORE_INDEX, 0, (chart.astype(np.float32) + 1) * STEP)

    sar = {
        "nersc_sar_primary": spell(sic),
        "nersc_sar_secondary": spell(sod),
        "sar_incidenceangle": spell(floe),
        "distance_map": np.ones(shape, np.float32),
    }
    coarse_shape = (shape[0] // 25, shape[1] // 25)
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


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    root = tmp_path_factory.mktemp("labelled-store")
    records = []
    for i, scene_id in enumerate(("20200301T000000_dmi", "20200302T000000_dmi")):
        record = write_scene(root, labelled_scene(scene_id, seed=i), SCENE_VARIABLES, 1, {})
        records.append({**record, "split": "train"})
    write_manifest(
        root,
        {
            "schema_version": STORE_SCHEMA,
            "parameters": {"downsample": 1, "variables": list(SCENE_VARIABLES)},
            "scenes": records,
        },
    )
    return Store(root)


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
    record = write_scene(tmp_path, labelled_scene("20200304T000000_dmi", shape=(400, 500)), SCENE_VARIABLES, 1, {})
    write_manifest(
        tmp_path,
        {
            "schema_version": STORE_SCHEMA,
            "parameters": {"downsample": 1, "variables": list(SCENE_VARIABLES)},
            "scenes": [{**record, "split": "train"}],
        },
    )

    def patches_with_old_ice(balance):
        dataset = PatchDataset(
            Store(tmp_path), options(patch_size=32, class_balance=balance, min_valid=0, augment=Augment.parse("none"))
        )
        return sum(bool((dataset[i]["SOD"] == 5).any()) for i in range(200))

    assert patches_with_old_ice(1.0) > 4 * max(patches_with_old_ice(0.0), 1)


def test_scene_smaller_than_patch_is_padded(tmp_path):
    record = write_scene(tmp_path, labelled_scene("20200303T000000_dmi", shape=(50, 60)), SCENE_VARIABLES, 1, {})
    write_manifest(
        tmp_path,
        {
            "schema_version": STORE_SCHEMA,
            "parameters": {"downsample": 1, "variables": list(SCENE_VARIABLES)},
            "scenes": [{**record, "split": "train"}],
        },
    )
    dataset = PatchDataset(Store(tmp_path), options(patch_size=80, min_valid=0, augment=Augment.parse("none")))
    sample = dataset[0]
    assert (sample["SIC"][50:] == IGNORE_INDEX).all() and (sample["SIC"][:, 60:] == IGNORE_INDEX).all()
    assert (sample["image"][:, 50:] == 0).all()


def test_augment_spec_parsing():
    assert Augment.parse("flip,rot90").spec() == "flip,rot90"
    assert Augment.parse("all").spec() == "flip,rot90,scale,cutmix"
    with pytest.raises(ValueError, match="unknown augmentation"):
        Augment.parse("mixup")
    assert SAR_VARIABLES[0] == "nersc_sar_primary"
