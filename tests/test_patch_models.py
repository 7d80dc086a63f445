"""Patch classifiers: homogeneous store patches, the sliding chart, the same commands as pixel models."""

from __future__ import annotations

import re

import mlflow
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from seaice_mlflow.cli import cli
from seaice_mlflow.core.errors import ModelSpecError, ParameterError
from seaice_mlflow.models import architectures, build_model, spec_from_options
from seaice_mlflow.models.classifiers import BACKBONES, PatchClassifier
from seaice_mlflow.tasks.autoice.augment import Augment
from seaice_mlflow.tasks.autoice.charts import AUTOICE
from seaice_mlflow.tasks.autoice.grid import assemble_inputs
from seaice_mlflow.tasks.autoice.patch_targets import HomogeneousPatchDataset, PatchRule, homogeneous_windows
from seaice_mlflow.tasks.autoice.patches import PatchLoader, PatchOptions
from seaice_mlflow.tasks.autoice.store import Store
from seaice_mlflow.tasks.autoice.train_config import TrainConfig

EXPERIMENT = "patch-test"
N_CLASSES = {h.name: h.n_classes for h in AUTOICE.heads}
VARIABLES = ("nersc_sar_primary", "nersc_sar_secondary", "btemp_36_5h", "month")


def test_a_patch_is_homogeneous_when_one_class_covers_the_purity_share_of_its_pixels():
    sod = np.full((8, 8), 2, np.uint8)
    sod[:4, 4:] = 3  # top right: another class
    sod[6, 1] = 255  # bottom left: one pixel of fill
    sod[4:, 4:7] = 4  # bottom right: mostly class 4
    rule = PatchRule(size=4, stride=4, charts=("SOD",), purity=1.0)
    assert homogeneous_windows({"SOD": sod}, rule, N_CLASSES) == [(0, 0, 2), (0, 4, 3)]  # fill is not a class
    loose = PatchRule(size=4, stride=4, charts=("SOD",), purity=0.75)
    assert homogeneous_windows({"SOD": sod}, loose, N_CLASSES) == [(0, 0, 2), (0, 4, 3), (4, 0, 2), (4, 4, 4)]
    floe = np.zeros((8, 8), np.uint8)
    floe[:4, :4] = 1
    floe[0, 0] = 2
    both = PatchRule(size=4, stride=4, charts=("SOD", "FLOE"), purity=1.0)
    assert homogeneous_windows({"SOD": sod, "FLOE": floe}, both, N_CLASSES) == [(0, 4, 3)]
    assert homogeneous_windows({"SOD": sod}, PatchRule(4, 2), N_CLASSES) == [(0, 0, 2), (0, 4, 3), (2, 0, 2)]


@pytest.fixture(scope="module")
def patch_dataset(train_store) -> HomogeneousPatchDataset:
    options = PatchOptions(32, VARIABLES, augment=Augment.parse("none"))
    return HomogeneousPatchDataset(Store(train_store), options, PatchRule(32, 8, ("SOD",), 0.9), N_CLASSES, seed=1)


def test_the_extractor_never_repeats_a_window_and_reads_the_stores_channels(patch_dataset):
    windows = [(e.scene_id, e.row, e.col) for e in patch_dataset.manifest]
    assert windows and len(set(windows)) == len(windows)
    assert all(e.row % 8 == 0 and e.col % 8 == 0 for e in patch_dataset.manifest)
    image = np.empty((6, len(VARIABLES), 32, 32), np.float32)
    charts = np.empty((6, 3, 32, 32), np.uint8)
    patch_dataset.write_batch(range(6), image, charts)
    for i in range(6):
        entry = patch_dataset.entry(np.random.default_rng([1, i]))
        scene, window = patch_dataset.scenes[entry.scene_id], entry.window(32)
        assert np.array_equal(image[i], assemble_inputs(scene, VARIABLES, window))
        assert np.array_equal(charts[i], scene.read_charts(window))
        sod = charts[i, 1]
        assert np.count_nonzero(sod == entry.label) >= 0.9 * sod.size
    loader = PatchLoader(patch_dataset, batch_size=4, workers=0)
    batch = next(iter(loader.epoch(0, 1)))
    assert batch["image"].shape == (4, len(VARIABLES), 32, 32) and batch["SOD"].shape == (4, 32, 32)
    rows = patch_dataset.manifest_rows()
    assert rows[0].keys() == {"scene_id", "row", "col", "size", "chart", "class"} and len(rows) == len(windows)


def test_a_store_without_homogeneous_patches_is_refused_with_the_option_to_change(train_store):
    options = PatchOptions(96, VARIABLES)
    with pytest.raises(ParameterError, match="option --patch-purity: no 96 px window .* lower --patch-purity"):
        HomogeneousPatchDataset(Store(train_store), options, PatchRule(96, 8, ("SOD",), 1.0), N_CLASSES)


def test_the_sliding_chart_gives_each_cell_the_class_of_the_window_centred_on_it():
    torch.manual_seed(0)
    network = build_model(spec_from_options("patchcnn", 3, AUTOICE.outputs(), {"patch_size": 16, "patch_stride": 4}))
    network.eval()
    x = torch.randn(1, 3, 22, 30)
    with torch.no_grad():
        out = network(x)
        padded = torch.nn.functional.pad(x, (6, 6 + 2, 6, 6 + 2))  # (16 - 4) / 2 on each side, to a multiple of 4
        for i, j in ((0, 0), (2, 3), (5, 7)):
            direct = network.classify(padded[:, :, 4 * i : 4 * i + 16, 4 * j : 4 * j + 16])["SOD"][0, :, 0, 0]
            cell = out["SOD"][0, :, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4]
            assert torch.allclose(cell, direct[:, None, None].expand_as(cell), atol=1e-5)
    assert {h: tuple(v.shape) for h, v in out.items()} == {"SIC": (1, 1, 22, 30), "SOD": (1, 6, 22, 30),
                                                          "FLOE": (1, 7, 22, 30)}  # fmt: skip
    network.train()
    spread = network(torch.randn(2, 3, 16, 16))["SOD"]
    assert spread.shape == (2, 6, 16, 16) and torch.equal(spread[:, :, 0, 0], spread[:, :, 15, 9])


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_every_classifier_takes_the_stores_channels_and_gives_every_head(backbone):
    arch = architectures()[backbone]
    assert arch.level == "patch"
    network = arch.build(7, AUTOICE.outputs(), arch.options(patch_size=64, stride=32))
    assert isinstance(network, PatchClassifier) and network.stride == 32
    network.eval()
    with torch.no_grad():
        out = network(torch.randn(1, 7, 64, 96))
    assert {h: v.shape[1] for h, v in out.items()} == AUTOICE.outputs() and out["SOD"].shape[-2:] == (64, 96)


def test_a_local_torchvision_state_dict_fills_all_but_the_first_and_last_layers(tmp_path):
    import torchvision

    torch.manual_seed(5)
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / "resnet18.pt")
    options = {"patch_size": 32, "pretrained": str(tmp_path / "resnet18.pt")}
    network = build_model(spec_from_options("resnet18", 5, AUTOICE.outputs(), options))
    assert torch.equal(network.features.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    assert network.features.conv1.weight.shape[1] == 5
    torch.save({"unrelated.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ParameterError, match="option --pretrained: .*other.pt fits 0 of the torchvision resnet18.s"):
        build_model(
            spec_from_options("resnet18", 5, AUTOICE.outputs(), {**options, "pretrained": str(tmp_path / "other.pt")})
        )


def test_a_patch_too_small_for_the_backbone_names_the_option():
    with pytest.raises(ModelSpecError, match="option --patch-size: alexnet cannot classify 16 px patches"):
        spec = spec_from_options("alexnet", 3, AUTOICE.outputs(), {"patch_size": 16})
        build_model(spec)
    with pytest.raises(ParameterError, match="option --patch-charts: 'ICE'"):
        TrainConfig(model="resnet18", patch_charts="ICE")
    with pytest.raises(ParameterError, match="option --land: filters the pixels .* chosen by --patch-purity"):
        TrainConfig(model="resnet18", land="exclude")
    with pytest.raises(ParameterError, match="option --border-distance: filters the pixels"):
        TrainConfig(model="patchcnn", border_distance=10)


@pytest.mark.slow
def test_a_patch_classifier_goes_through_train_evaluate_register_and_predict(train_store, test_dir, tmp_path, tracking):
    runner = CliRunner()
    trained = runner.invoke(cli, ["train", "--store", str(train_store), "--out", str(tmp_path / "ckpt"), "--model",
                                  "patchcnn", "--patch-size", "32", "--patch-stride", "8", "--patch-purity", "0.9",
                                  "--epochs", "1", "--batches-per-epoch", "2", "--batch-size", "4", "--workers", "0",
                                  "--val-tile", "64", "--device", "cpu"])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    uri = re.search(r"model (models:/m-\w+)", trained.output).group(1)
    [run] = mlflow.search_runs(experiment_names=[EXPERIMENT], output_format="list")
    assert run.data.params["model"] == "patchcnn" and "best_val_patch_SOD_f1" in run.data.metrics
    assert "best_val_combined" in run.data.metrics
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "patches")}
    assert artifacts == {"patches/train_manifest.json"}
    evaluated = runner.invoke(cli, ["evaluate", "--model-uri", uri, "--data-dir", str(test_dir), "--device", "cpu"])
    assert evaluated.exit_code == 0, evaluated.output
    registered = runner.invoke(cli, ["register", "--experiment", EXPERIMENT, "--model-name", "patch-charts"])
    assert registered.exit_code == 0, registered.output
    predicted = runner.invoke(cli, ["predict", "--model-uri", "models:/patch-charts@champion", "--scenes",
                                    str(test_dir), "--out", str(tmp_path / "charts"), "--device", "cpu"])  # fmt: skip
    assert predicted.exit_code == 0, predicted.output
    assert len(list((tmp_path / "charts").glob("*_charts.nc"))) == 2
