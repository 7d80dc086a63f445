"""`seaice explain`: attribution that ranks the inputs a model really reads, on any architecture."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import netCDF4
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from seaice_mlflow.cli import cli
from seaice_mlflow.core.attribution import (
    METHODS,
    Feature,
    Patches,
    Settings,
    attribution_table,
    deeplift_ready,
)
from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.core.gradcam import cam_targets, tile_windows
from seaice_mlflow.core.permutation import perturbed_scores, replaced
from seaice_mlflow.models import architectures, build_model, spec_from_options
from seaice_mlflow.tasks.autoice import explain as explain_module
from seaice_mlflow.tasks.autoice.charts import AUTOICE
from seaice_mlflow.tasks.autoice.downsample import downsample_chart
from seaice_mlflow.tasks.autoice.explain import (
    DEFAULT_GROUPS,
    PatchBatches,
    features_of,
    parse_classes,
    sample_patches,
    scene_windows,
)
from seaice_mlflow.tasks.autoice.files.variables import INPUT_VARIABLES, SCENE_VARIABLES
from seaice_mlflow.tasks.autoice.pyfunc import log_chart_model
from seaice_mlflow.tasks.autoice.recipe import Recipe
from seaice_mlflow.tasks.autoice.sources import SceneTiles
from seaice_mlflow.tasks.autoice.synthetic import synthesize
from seaice_mlflow.tasks.autoice.train_config import TrainConfig
from tests.tiny_model import tiny_store, use_tracking

EXPERIMENT = "explain-test"


class OneChannel(nn.Module):
    """Every head computed from input channel ``k`` only (a fixed convolution wired to it); the
    same activation module is called twice, as a ResNet block does."""

    stride = 1

    def __init__(self, k: int):
        super().__init__()
        torch.manual_seed(0)
        self.k, self.conv, self.relu = k, nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(inplace=True)
        self.heads = nn.ModuleDict({h.name: nn.Conv2d(6, h.channels, 1) for h in AUTOICE.heads})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.relu(self.relu(self.conv(x[:, self.k : self.k + 1])) - 0.1)
        return {name: head(features) for name, head in self.heads.items()}


def own_references(network: nn.Module, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = network(inputs)
    return {h.name: (out[h.name][:, 0].round().clamp(0, h.n_classes - 1).long() if h.kind == "regression"
                     else out[h.name].argmax(1)) for h in AUTOICE.heads}  # fmt: skip


def features(channels: int) -> list[Feature]:
    variables = [Feature(f"v{i}", (i,), "variable") for i in range(channels)]
    return [*variables, Feature("a", (0, 1), "group"), Feature("b", (2,), "group"), Feature("c", (3, 4), "group")]


def test_every_method_ranks_the_only_channel_a_network_reads_first_and_the_others_at_zero():
    network = OneChannel(k=2).eval()
    inputs = torch.randn(6, 5, 24, 24, generator=torch.Generator().manual_seed(1))
    patches = Patches(inputs, own_references(network, inputs))
    rows = attribution_table(network, AUTOICE, patches, ["SIC", "SOD", "FLOE"], {"SOD": [0, 1, 2]}, features(5),
                             METHODS, Settings(steps=8, repeats=2))  # fmt: skip
    assert {r.method for r in rows} == set(METHODS) and {r.head for r in rows} == {"SIC", "SOD", "FLOE"}
    assert {r.target for r in rows if r.head == "SOD"} >= {"all", AUTOICE.head("SOD").class_names[0]}
    for method in METHODS:
        for level, read in (("variable", "v2"), ("group", "b")):
            chosen = [r for r in rows if r.method == method and r.level == level and r.target == "all"]
            for head in ("SIC", "SOD", "FLOE"):
                ranked = sorted((r for r in chosen if r.head == head), key=lambda r: -r.share)
                assert ranked[0].feature == read, (method, head, ranked[:2])
                assert ranked[0].share == pytest.approx(1.0) and all(r.share < 1e-6 for r in ranked[1:])


def test_the_same_seed_gives_the_same_gradient_shap_rows():
    network = OneChannel(k=1).eval()
    inputs = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    patches = Patches(inputs, own_references(network, inputs))
    features = [Feature(f"v{i}", (i,), "variable") for i in range(3)]

    def run(seed: int) -> list[float]:
        rows = attribution_table(
            network, AUTOICE, patches, ["SOD"], {}, features, ["gradshap"], Settings(steps=4, seed=seed)
        )
        return [r.value for r in rows]

    np.random.seed(123)
    assert run(0) == run(0) and run(0) != run(1)
    assert np.random.rand() == np.random.RandomState(123).rand()  # numpy's global generator is left as it was


def test_deeplift_copy_splits_reused_activations_and_keeps_the_outputs():
    network = OneChannel(k=0).eval()
    x = torch.randn(2, 3, 16, 16)
    ready = deeplift_ready(network, (x,))
    assert sum(isinstance(m, nn.ReLU) for m in ready.modules()) == 2 and not ready.relu.copies[0].inplace
    before, after = network(x), ready(x)
    assert all(torch.allclose(before[h], after[h]) for h in before)
    assert all(torch.allclose(before[h], ready(x)[h]) for h in before)
    assert ready.relu.calls == 2  # the call order restarts with every pass (it would be 4 after two passes)


#: The segmentation architectures and one patch classifier: the classifiers differ in their
#: torchvision backbone only (tests/test_patch_models.py builds every one).
EXPLAINED = sorted({name for name, a in architectures().items() if a.level == "pixel"} | {"patchcnn"})


@pytest.mark.parametrize("arch", EXPLAINED)
def test_every_architecture_of_the_registry_can_be_explained(arch):
    options = {
        "unet_filters": (4, 4, 8, 8),
        "deeplab_depth": 18,
        "patch_size": 16,
        "patch_stride": 8,
        "encoder": "resnet18",
    }
    network = build_model(spec_from_options(arch, 5, AUTOICE.outputs(), options)).eval()
    inputs = torch.randn(2, 5, 32, 32)
    patches = Patches(inputs, own_references(network, inputs))
    rows = attribution_table(network, AUTOICE, patches, ["SOD"], {}, features(5), METHODS, Settings(steps=4, repeats=1))
    assert len(rows) == len(METHODS) * len(features(5)) and all(np.isfinite(r.share) for r in rows)
    targets = cam_targets(AUTOICE.head("SOD"), [0, 3])
    from seaice_mlflow.core.gradcam import tile_cams

    if architectures()[arch].level == "patch":
        return  # `seaice explain --gradcam` refuses patch classifiers (one head call per window)
    maps = tile_cams(network, targets, inputs[:1])
    assert maps.shape == (2, 32, 32) and np.isfinite(maps).all() and (maps >= 0).all()
    assert maps.reshape(2, -1).std(axis=1).max() > 0  # a map, not a constant


def test_explain_refuses_what_does_not_hold_for_patch_classifiers():
    from seaice_mlflow.tasks.autoice.steps.explain import check_for_patch_models

    spec = spec_from_options("patchcnn", 3, AUTOICE.outputs(), {"patch_size": 16})
    recipe = Recipe(spec, ("nersc_sar_primary", "nersc_sar_secondary", "month"))
    with pytest.raises(ParameterError, match="option --methods: deepliftshap cannot explain the patch classifier"):
        check_for_patch_models(recipe, ["ig", "deepliftshap"], gradcam=False)
    with pytest.raises(ParameterError, match="option --gradcam: Grad-CAM maps one layer call"):
        check_for_patch_models(recipe, ["ig"], gradcam=True)
    check_for_patch_models(recipe, ["ig", "ablation", "gradshap", "permutation"], gradcam=False)


def test_tiles_cover_the_scene_once():
    windows = tile_windows((70, 50), 32, stride=8)
    cover = np.zeros((70, 50), int)
    for w in windows:
        cover[w.slices] += 1
        assert w.height <= 32 and w.width <= 32 and w.row % 32 == 0
    assert (cover == 1).all()


def test_groups_and_classes_are_checked_against_the_model(tmp_path):
    variables = ("nersc_sar_primary", "nersc_sar_secondary", "btemp_36_5h", "month")
    chosen = features_of("default", variables)
    groups = {f.name: f.channels for f in chosen if f.level == "group"}
    assert groups == {"SAR HH/HV": (0, 1), "AMSR2 36.5 GHz": (2,), "month": (3,)}
    assert [f.level for f in features_of("none", variables)] == ["variable"] * 4
    assert set(v for members in DEFAULT_GROUPS.values() for v in members) == set(INPUT_VARIABLES)
    good = tmp_path / "groups.json"
    good.write_text(json.dumps({"radar": ["nersc_sar_primary", "nersc_sar_secondary"]}))
    assert features_of(str(good), variables)[-1] == Feature("radar", (0, 1), "group")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"winds": ["u10m_rotated"]}))
    with pytest.raises(ParameterError, match="option --groups: .*'winds' names 'u10m_rotated', which the model"):
        features_of(str(bad), variables)
    assert parse_classes("SOD=3|old ice,FLOE=0", AUTOICE, ["SOD", "FLOE"]) == {"SOD": [3, 5], "FLOE": [0]}
    assert parse_classes("all", AUTOICE, ["SOD"]) is None and parse_classes("none", AUTOICE, ["SOD"]) == {}
    with pytest.raises(ParameterError, match="option --classes: SOD has no class '9' \\(its classes: 0 open water"):
        parse_classes("SOD=9", AUTOICE, ["SOD"])
    with pytest.raises(ParameterError, match="option --classes: 'SIC=1': write CHART=A|B with a chart among SOD"):
        parse_classes("SIC=1", AUTOICE, ["SOD"])


def test_patches_are_the_models_inputs_on_valid_charts_and_repeat_with_the_seed(ready_dir):
    files = sorted(ready_dir.glob("*_prep.nc"))
    recipe = Recipe(spec_from_options("unet", 6, AUTOICE.outputs(), {"unet_filters": (4, 4, 8, 8)}),
                    ("nersc_sar_primary", "nersc_sar_secondary", "btemp_18_7h", "month", "sin_lat", "cos_lon"),
                    downsample=2)  # fmt: skip
    sample = sample_patches(files, recipe, ["SOD", "FLOE"], 5, 16, seed=3)
    [patches] = PatchBatches(sample, recipe, ["SOD", "FLOE"])
    again = sample_patches(files, recipe, ["SOD", "FLOE"], 5, 16, seed=3)
    [same] = PatchBatches(again, recipe, ["SOD", "FLOE"])
    records = sample.records
    assert records == again.records and torch.equal(patches.inputs, same.inputs) and len(records) == 5
    assert patches.inputs.shape == (5, 6, 16, 16) and {r.scene_id for r in records} == {
        f.name.removesuffix("_prep.nc") for f in files
    }
    from seaice_mlflow.tasks.autoice.files.windowed import open_scene

    record = records[0]
    with open_scene(ready_dir / record.file) as scene:
        from seaice_mlflow.core.tiling import Window

        expected = SceneTiles(scene, recipe.variables, 2).read(Window(record.row, record.col, 16, 16))
    assert np.array_equal(patches.inputs[0].numpy(), expected)
    centre = patches.references["SOD"][:, 8, 8]
    assert ((patches.references["SOD"] != 255).flatten(1).any(1)).all() and (centre != 255).any()
    with pytest.raises(ParameterError, match="option --patch-size: no scene of 2 with charts holds a 400 px"):
        sample_patches(files, recipe, ["SOD"], 5, 400, seed=3)


def test_patches_are_distinct_capped_at_what_the_scenes_hold_and_read_a_batch_at_a_time(ready_dir):
    files = sorted(ready_dir.glob("*_prep.nc"))
    recipe = Recipe(spec_from_options("unet", 3, AUTOICE.outputs(), {"unet_filters": (4, 4, 8, 8)}),
                    ("nersc_sar_primary", "btemp_36_5h", "month"), downsample=4)  # fmt: skip
    from seaice_mlflow.tasks.autoice.files.windowed import open_scene

    held, size = 0, 22  # distinct windows centred (clipped) on pixels where SOD has a class, counted here
    for path in files:
        with open_scene(path) as scene:
            sod = downsample_chart(scene.charts["SOD"], 4)  # the x4 working grid, 24 x 32
            rows, cols = np.nonzero(sod != 255)
            held += len({(min(max(r - size // 2, 0), sod.shape[0] - size), min(max(c - size // 2, 0),
                          sod.shape[1] - size)) for r, c in zip(rows, cols)})  # fmt: skip
            assert len(scene_windows(scene, recipe, ["SOD"], size)) > 0
    sample = sample_patches(files, recipe, ["SOD"], 8000, size, seed=1)
    corners = [(r.scene_id, r.row, r.col) for r in sample.records]
    assert len(corners) == len(set(corners)) == held < 8000  # drawn without replacement, all the scenes hold
    assert f"8000 patches asked for, but the 2 scene(s) with charts hold {held} distinct {size} px" in sample.note
    small = sample_patches(files, recipe, ["SOD"], 7, size, seed=1)
    assert (
        len(small.records) == 7
        and not small.note
        and {r.scene_id for r in small.records} == {f.name.removesuffix("_prep.nc") for f in files}
    )  # spread over both scenes
    batches = PatchBatches(sample, recipe, ["SOD"], batch=8)
    read = list(batches)
    assert len(read) == len(batches) == -(-held // 8) > 1 and all(len(b.inputs) <= 8 for b in read)
    assert [b.offset for b in read] == list(range(0, held, 8))
    [whole] = PatchBatches(sample, recipe, ["SOD"], batch=held)
    assert torch.equal(torch.cat([b.inputs for b in read]), whole.inputs)
    network = OneChannel(k=1).eval()
    features = [Feature(v, (i,), "variable") for i, v in enumerate(recipe.variables)]
    by_batch, at_once = (attribution_table(network, AUTOICE, patches, ["SOD"], {}, features, ["ig", "permutation"],
                                           Settings(steps=2, repeats=1))
                         for patches in (read, whole))  # fmt: skip
    assert [(r.method, r.feature, r.patches) for r in by_batch] == [(r.method, r.feature, r.patches) for r in at_once]
    assert {r.patches for r in by_batch} == {held}
    ig = [r for r in by_batch if r.method == "ig"]  # per patch: the same whatever the batch
    np.testing.assert_allclose([r.share for r in ig], [r.share for r in at_once if r.method == "ig"], atol=1e-5)
    dropped = {r.feature: r.value for r in by_batch if r.method == "permutation"}  # pooled over the batches
    assert dropped["btemp_36_5h"] != 0 and dropped["nersc_sar_primary"] == dropped["month"] == 0


def test_explain_attributes_patches_in_batches_and_says_when_the_scenes_hold_fewer(
    ready_dir, tmp_path, tracking, monkeypatch
):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "explain-batches")  # not the runs other tests of EXPERIMENT count
    mlflow.set_experiment("explain-batches")
    spec = spec_from_options("unet", len(SCENE_VARIABLES), AUTOICE.outputs(), {"unet_filters": (2, 2)})
    with mlflow.start_run():
        uri = log_chart_model(build_model(spec), Recipe(spec, SCENE_VARIABLES)).model_uri
    monkeypatch.setattr(explain_module, "BATCH_BYTES", 24 * 96 * 96 * 4 * 10)  # 10 patches per batch
    out = tmp_path / "explain"
    result = CliRunner().invoke(cli, ["explain", "--model-uri", uri, "--data-dir", str(ready_dir), "--patches", "100",
                                      "--patch-size", "96", "--methods", "ig", "--steps", "2", "--charts", "SOD",
                                      "--classes", "none", "--out", str(out), "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    patches = (out / "patches.csv").read_text().splitlines()[1:]
    assert len(patches) == len(set(patches)) < 100  # distinct windows, no more than the scenes hold
    assert f"note: 100 patches asked for, but the 2 scene(s) with charts hold {len(patches)} distinct" in result.output
    assert "drawing 100 patches of 96 px from 2 scene file(s)" in result.output  # a line per long step
    assert f"ig: {len(patches)} patches in {-(-len(patches) // 10)} batch(es)" in result.output
    [run] = mlflow.search_runs(experiment_names=["explain-batches"], output_format="list",
                               filter_string="tags.`seaice.entry_point` = 'explain'")  # fmt: skip
    assert run.data.metrics["explain_patches"] == len(patches)


@pytest.fixture(scope="module")
def decisive_model(tmp_path_factory, store_uri) -> tuple[str, Path]:
    """A tiny model trained on synthetic scenes whose incidence angle is made the SOD code
    (z-score class - 2.5 under the chart, noise elsewhere): the input that decides SOD."""
    from seaice_mlflow.tasks.autoice.steps.train import train

    work = tmp_path_factory.mktemp("decisive")
    data = work / "scenes"
    synthesize(data, n_scenes=4, size=(160, 160), split="train", fmt="ready", seed=21)
    rng = np.random.default_rng(0)
    for path in sorted(data.glob("*_prep.nc")):
        with netCDF4.Dataset(path, "a") as ds:
            ds.set_auto_mask(False)
            sod, hh = ds["SOD"][:], ds["nersc_sar_primary"][:]
            angle = np.where(sod == 255, rng.normal(size=sod.shape), sod.astype(np.float32) - 2.5)
            ds["sar_incidenceangle"][:] = np.where(hh == 0, 0, angle).astype(np.float32)
    store = tiny_store(data, work / "store", val_scenes=1)
    with pytest.MonkeyPatch.context() as patch:
        use_tracking(patch, store_uri, EXPERIMENT)
        patch.chdir(work)
        config = TrainConfig(store=str(store), out=str(work / "ckpt"), unet_filters="8,8,16,16", epochs=4,
                             batches_per_epoch=12, batch_size=8, patch_size=64, workers=0, val_tile=96,
                             device="cpu", early_stopping=0, class_weights="balanced:SOD")  # fmt: skip
        result = train(config, echo=lambda _: None)
    return result.model_uri, data


@pytest.mark.slow
def test_the_decisive_input_ranks_top_two_with_every_method_and_ablating_it_costs_most(
    decisive_model, tmp_path, tracking
):
    uri, data = decisive_model
    out = tmp_path / "explain"
    args = ["explain", "--model-uri", uri, "--data-dir", str(data), "--charts", "SOD", "--classes", "SOD=0",
            "--patches", "12", "--patch-size", "48", "--steps", "8", "--repeats", "2", "--gradcam", "--tile", "64",
            "--out", str(out), "--device", "cpu", "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output[result.output.index("[") :])
    for method in METHODS:
        ranked = sorted((r for r in rows if r["method"] == method and r["level"] == "group" and r["target"] == "all"),
                        key=lambda r: -r["share"])  # fmt: skip
        assert "incidence angle" in [r["feature"] for r in ranked[:2]], (method, ranked[:3])
    [run] = mlflow.search_runs(experiment_names=[EXPERIMENT], filter_string="tags.`seaice.entry_point` = 'explain'",
                               output_format="list")  # fmt: skip
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"importance.csv", "importance.png", "importance_variables.png", "patches.csv", "gradcam"} <= artifacts
    assert run.data.metrics["explain_patches"] == 12 and run.data.params["methods"] == ",".join(METHODS)
    scene = sorted(data.glob("*_prep.nc"))[0]
    with netCDF4.Dataset(out / "gradcam" / scene.name.replace("_prep.nc", "_gradcam.nc")) as ds, \
            netCDF4.Dataset(scene) as source:  # fmt: skip
        assert ds["gradcam_SOD_0"].dimensions == ("sar_lines", "sar_samples") and "gradcam_SOD_1" not in ds.variables
        assert ds["gradcam_SOD_0"].shape == source["SOD"].shape
        values = ds["gradcam_SOD_0"][:]
        assert np.isfinite(values).all() and (values >= 0).all() and values.max() > 0
    assert (out / "gradcam" / scene.name.replace("_prep.nc", "_gradcam_SOD.png")).is_file()

    # ablating the top-ranked group lowers the official score more than ablating the bottom-ranked one
    from seaice_mlflow.core.engine import TileOptions
    from seaice_mlflow.tasks.autoice.logged_models import load_model

    model, _ = load_model(uri, "cpu", TileOptions())
    network, recipe = model.predictor.models[0], model.recipe
    [patches] = PatchBatches(sample_patches(sorted(data.glob("*_prep.nc")), recipe, ["SOD"], 12, 48, seed=0), recipe,
                             ["SOD"])  # fmt: skip
    groups = {f.name: f for f in features_of("default", recipe.variables) if f.level == "group"}
    ig = sorted((r for r in rows if r["method"] == "ig" and r["level"] == "group" and r["target"] == "all"),
                key=lambda r: -r["share"])  # fmt: skip
    scores = {name: perturbed_scores(network, AUTOICE, patches, ["SOD"], replaced(groups[name].channels, "zero"))
              ["SOD"][0] for name in (ig[0]["feature"], ig[-1]["feature"])}  # fmt: skip
    assert scores[ig[0]["feature"]] < scores[ig[-1]["feature"]]


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: list[str], params=None) -> list[str]:
        return model_input


def test_explain_refuses_what_is_no_model_of_this_package(ready_dir, tmp_path, tracking):
    mlflow.set_experiment(EXPERIMENT)  # not the experiment an earlier test of this process left active
    with mlflow.start_run() as run:
        mlflow.log_text("not a model", "model/MLmodel")
    result = CliRunner().invoke(cli, ["explain", "--model-uri", f"runs:/{run.info.run_id}/model", "--data-dir",
                                      str(ready_dir), "--out", str(tmp_path / "x"), "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 1 and "option --model-uri" in result.output
    with mlflow.start_run():
        other = mlflow.pyfunc.log_model(name="echo", python_model=Echo())
    result = CliRunner().invoke(cli, ["explain", "--model-uri", other.model_uri, "--data-dir", str(ready_dir),
                                      "--out", str(tmp_path / "x"), "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 1 and "is not a seaice chart model (logged by `seaice train`)" in result.output
    result = CliRunner().invoke(cli, ["explain", "--model-uri", "models:/m-0", "--data-dir", str(ready_dir),
                                      "--methods", "ig,lime", "--out", str(tmp_path / "x")])  # fmt: skip
    assert result.exit_code == 1 and "option --methods: 'lime': give a comma list of ig, ablation" in result.output
