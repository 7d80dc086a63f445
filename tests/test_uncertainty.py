"""Uncertainty layers and calibration: the engine's layers against hand computations, temperature
scaling, the expected calibration error, the layers in every product, training and evaluate."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import mlflow
import netCDF4
import numpy as np
import pyogrio
import pytest
import rasterio
import torch
import torch.nn.functional as F
from torch import nn

from seaice_mlflow.core import calibration
from seaice_mlflow.core.calibration import (
    TEMPERATURE_RANGE,
    HeadCalibration,
    PixelSample,
    ReliabilityTable,
    calibrate,
    fit_temperature,
    reliability,
    sample_logits,
)
from seaice_mlflow.core.engine import ChartPrediction, ChartPredictor, Member, TileOptions, blend_weights, tile_layout
from seaice_mlflow.models import ModelSpec, UNetOptions
from seaice_mlflow.tasks.autoice.charts import AUTOICE, CHART_NAMES, IGNORE_INDEX, autoice_task
from seaice_mlflow.tasks.autoice.ensemble import combine
from seaice_mlflow.tasks.autoice.files.reader import read_scene
from seaice_mlflow.tasks.autoice.files.variables import SCENE_VARIABLES
from seaice_mlflow.tasks.autoice.files.windowed import open_scene
from seaice_mlflow.tasks.autoice.gis.polygons import LAYER
from seaice_mlflow.tasks.autoice.logged_models import load_charter
from seaice_mlflow.tasks.autoice.products import write_products
from seaice_mlflow.tasks.autoice.pyfunc import load_chart_model
from seaice_mlflow.tasks.autoice.recipe import Recipe
from seaice_mlflow.tasks.autoice.sources import ArrayTiles
from seaice_mlflow.tasks.autoice.steps.evaluate import evaluate
from seaice_mlflow.tasks.autoice.steps.train import calibrated_recipe, train
from seaice_mlflow.tasks.autoice.train_config import TrainConfig
from tests.conftest import prep_files
from tests.test_inference import ConstantNet
from tests.tiny_model import tiny_store, train_tiny_model

EXPERIMENT = "uncertainty-test"
TASK = autoice_task("regression")  # SIC regressed, SOD and FLOE classified
SOD_P = [0.5, 0.2, 0.1, 0.1, 0.05, 0.05]
FLOE_P = [0.4, 0.3, 0.1, 0.1, 0.05, 0.03, 0.02]
SOURCE = ArrayTiles(np.zeros((1, 21, 27), np.float32), ["month"])
OPTIONS = TileOptions(16, 8)  # several overlapping tiles each way
LEGACY_RECIPE = Path(__file__).resolve().parent / "fixtures" / "model_bc59fb3" / "artifacts" / "recipe.json"


def fixed(sic: float = 4.0, sod=SOD_P, floe=FLOE_P) -> nn.Module:
    """A network whose softmax is ``sod`` and ``floe`` and whose SIC value is ``sic`` at every pixel."""
    return ConstantNet({"SIC": [sic], "SOD": np.log(sod).tolist(), "FLOE": np.log(floe).tolist()})


def entropy(p) -> float:
    p = np.asarray(p, dtype=np.float64)
    return float(-(p * np.log(p)).sum() / np.log(len(p)))


class ColumnNet(nn.Module):
    """SIC value = the column within its input / 10, so overlapping tiles disagree; SOD/FLOE fixed."""

    stride = 1

    def forward(self, x):
        n, _, h, w = x.shape
        out = fixed()(x)
        out["SIC"] = (torch.arange(w, dtype=torch.float32) / 10).expand(n, 1, h, w).clone()
        return out


# --- the engine's layers ----------------------------------------------------------------------


def test_confidence_and_entropy_of_fixed_probabilities_are_exact():
    predictor = ChartPredictor([(fixed(), TASK)], "cpu", OPTIONS)
    layers = predictor.predict(SOURCE, uncertainty=True).uncertainty
    assert set(layers) == {"SIC_spread", "SOD_confidence", "SOD_entropy", "FLOE_confidence", "FLOE_entropy"}
    for chart, p in (("SOD", SOD_P), ("FLOE", FLOE_P)):
        assert layers[f"{chart}_confidence"].dtype == np.float32 and layers[f"{chart}_confidence"].shape == (21, 27)
        np.testing.assert_allclose(layers[f"{chart}_confidence"], max(p), atol=1e-6)
        np.testing.assert_allclose(layers[f"{chart}_entropy"], entropy(p), atol=1e-6)
    assert np.abs(layers["SIC_spread"]).max() < 1e-6  # one translation-invariant member: no spread
    whole = predictor.predict_whole(SOURCE, uncertainty=True).uncertainty
    for name, values in layers.items():
        np.testing.assert_allclose(whole[name], values, atol=1e-6, err_msg=name)
    assert predictor.predict(SOURCE).uncertainty is None


def test_disagreement_is_the_members_mutual_information():
    a, b = [0.9] + [0.02] * 5, [0.02] * 5 + [0.9]
    same = ChartPredictor([(fixed(sod=a), TASK), (fixed(sod=a), TASK)], "cpu", OPTIONS)
    layers = same.predict(SOURCE, uncertainty=True).uncertainty
    assert np.abs(layers["SOD_disagreement"]).max() < 1e-6 and np.abs(layers["FLOE_disagreement"]).max() < 1e-6
    differ = ChartPredictor([(fixed(sod=a), TASK), (fixed(sod=b), TASK)], "cpu", OPTIONS)
    layers = differ.predict(SOURCE, uncertainty=True).uncertainty
    mean = (np.array(a) + np.array(b)) / 2
    expected = entropy(mean) - (entropy(a) + entropy(b)) / 2
    assert expected > 0.3
    np.testing.assert_allclose(layers["SOD_disagreement"], expected, atol=1e-5)
    np.testing.assert_allclose(layers["SOD_confidence"], mean.max(), atol=1e-6)
    assert np.abs(layers["FLOE_disagreement"]).max() < 1e-6  # the members agree on FLOE


def test_spread_of_a_value_across_members_and_tile_overlaps():
    two = ChartPredictor([(fixed(sic=3.0), TASK), (fixed(sic=5.0), TASK)], "cpu", OPTIONS)
    np.testing.assert_allclose(two.predict(SOURCE, uncertainty=True).uncertainty["SIC_spread"], 1.0, atol=1e-6)
    spread = ChartPredictor([(ColumnNet(), TASK)], "cpu", OPTIONS).predict(SOURCE, uncertainty=True)
    spread = spread.uncertainty["SIC_spread"]
    origins, sizes = tile_layout(27, 16, 8, 1)
    expected = np.zeros(27)
    for col in range(27):  # by hand: the weighted std of each covering tile's value at that column
        pairs = [((col - o) / 10, w[col - o]) for o, s, w in zip(origins, sizes, blend_weights(sizes, origins))
                 if o <= col < o + s]  # fmt: skip
        values, weights = np.array(pairs).T
        mean = np.average(values, weights=weights)
        expected[col] = np.sqrt(np.average((values - mean) ** 2, weights=weights))
    np.testing.assert_allclose(spread, np.broadcast_to(expected, spread.shape), atol=1e-5)
    assert spread[:, : origins[1]].max() < 1e-6 and spread.max() > 0.2  # one tile: none; overlaps: some


def test_temperatures_soften_the_probabilities_and_the_uncalibrated_confidence_is_kept():
    member = Member(fixed(), TASK, {"SOD": 2.0})
    asked = ("confidence", "confidence_uncalibrated")
    prediction = ChartPredictor([member], "cpu", OPTIONS).predict(SOURCE, with_scores=True, uncertainty=asked)
    softened = torch.softmax(torch.log(torch.tensor(SOD_P)) / 2, 0).numpy()
    np.testing.assert_allclose(prediction.scores["SOD"][:, 5, 7], softened, atol=1e-6)
    layers = prediction.uncertainty
    assert set(layers) == {f"{c}_{k}" for c in ("SOD", "FLOE") for k in asked}
    np.testing.assert_allclose(layers["SOD_confidence"], softened.max(), atol=1e-6)
    np.testing.assert_allclose(layers["SOD_confidence_uncalibrated"], max(SOD_P), atol=1e-6)
    np.testing.assert_allclose(layers["FLOE_confidence"], layers["FLOE_confidence_uncalibrated"])
    with pytest.raises(ValueError, match="head SIC is a regression"):
        ChartPredictor([Member(fixed(), TASK, {"SIC": 2.0})], "cpu")
    with pytest.raises(ValueError, match="a temperature is a positive number"):
        ChartPredictor([Member(fixed(), TASK, {"SOD": 0.0})], "cpu")
    with pytest.raises(ValueError, match="unknown uncertainty layers variance"):
        ChartPredictor([member], "cpu").predict(SOURCE, uncertainty=("variance",))


# --- calibration --------------------------------------------------------------------------------


def test_temperature_fit_recovers_a_known_temperature_and_lowers_the_ece():
    generator = torch.Generator().manual_seed(0)
    true = torch.randn(20000, 5, generator=generator) * 2
    targets = torch.multinomial(F.softmax(true, dim=1), 1, generator=generator)[:, 0]
    temperature = fit_temperature(true * 3, targets)
    assert abs(temperature - 3) < 0.15
    assert reliability(F.softmax(true, dim=1), targets).ece() < 1.5  # calibrated by construction
    assert reliability(F.softmax(true * 3, dim=1), targets).ece() > 10  # over-confident
    assert reliability(F.softmax(true * 3 / temperature, dim=1), targets).ece() < 1.5
    assert fit_temperature(torch.empty(0, 5), torch.empty(0, dtype=torch.long)) == 1.0
    assert fit_temperature(true * 1000, targets) == TEMPERATURE_RANGE[1]  # clamped


def test_reliability_table_by_hand_and_pooled():
    table = ReliabilityTable()
    table.add(np.array([0.95] * 4), np.array([True, True, False, False]))  # bin 14: accuracy 0.5
    table.add(np.array([0.55, 0.55, 1.0]), np.array([True, True, True]))  # bin 8 (accuracy 1) and 1.0 in bin 14
    assert table.counts[14] == 5 and table.counts[8] == 2 and table.pixels == 7
    gaps = abs(3 - (0.95 * 4 + 1.0)) + abs(2 - 2 * 0.55)  # per bin: |right - sum of confidences|
    assert table.ece() == pytest.approx(100 * gaps / 7)
    assert np.isnan(ReliabilityTable().ece())


def test_pixel_sample_is_bounded_and_skips_ignored_pixels():
    targets = np.zeros((20, 30), np.uint8)
    targets[:, 15:] = 1
    targets[::2] = IGNORE_INDEX
    charts = {"SIC": targets, "SOD": targets, "FLOE": np.where(targets == IGNORE_INDEX, IGNORE_INDEX, 2)}
    source = ArrayTiles(np.zeros((1, 20, 30), np.float32), ["month"])
    samples = sample_logits(fixed(), TASK, [(source, charts)], torch.device("cpu"), tile=8, size=50)
    assert set(samples) == {"SOD", "FLOE"}  # SIC is regressed: no temperature
    logits, sod = samples["SOD"].tensors()
    assert logits.shape == (50, 6) and set(sod.tolist()) == {0, 1} and 10 < int(sod.sum()) < 40
    np.testing.assert_allclose(logits, np.log([SOD_P] * 50), atol=1e-6)
    heads = calibrate(samples)
    assert heads["SOD"].fitted and heads["SOD"].pixels == 50 and heads["SOD"].classes == 2
    floe = heads["FLOE"]  # one class: no temperature to fit
    assert not floe.fitted and floe.temperature == 1.0 and floe.classes == 1 and floe.ece == floe.ece_uncalibrated
    empty = calibrate({"FLOE": PixelSample(10, np.random.default_rng(0))})["FLOE"]
    assert (empty.temperature, empty.pixels, empty.fitted) == (1.0, 0, False) and np.isnan(empty.ece)


def test_a_chart_left_at_temperature_one_is_named(tracking):
    fitted, single = HeadCalibration(1.7, True, 90, 3, 4.0, 9.0), HeadCalibration(1.0, False, 90, 1, 5.0, 5.0)
    training = SimpleNamespace(val_scenes=["val"], recipe=Recipe.load(LEGACY_RECIPE),
                               calibrate=lambda: {"SOD": fitted, "FLOE": single})  # fmt: skip
    lines: list[str] = []
    mlflow.set_experiment(EXPERIMENT)  # not an experiment id that an earlier test left active
    with mlflow.start_run() as run:
        recipe, metrics = calibrated_recipe(training, lines.append)
    assert recipe.temperatures == {"SOD": 1.7} and metrics["temperature_FLOE"] == 1.0
    assert metrics["best_val_SOD_ece"] == 4.0 and metrics["best_val_SOD_ece_uncalibrated"] == 9.0
    assert lines == [
        "warning: FLOE left at temperature 1: their validation pixels hold fewer than 2 classes; hold out more "
        "varied scenes with `seaice preprocess --val-scenes N`"
    ]
    assert "FLOE left at temperature 1" in mlflow.get_run(run.info.run_id).data.tags["seaice.calibration"]


def test_recipes_carry_temperatures_and_older_ones_load_with_temperature_one():
    base = Recipe(ModelSpec("unet", len(SCENE_VARIABLES), AUTOICE.outputs(), UNetOptions((2,))), SCENE_VARIABLES)
    older = base.as_dict()
    older.pop("temperatures")
    assert Recipe.from_dict(older).temperatures == {}
    calibrated = replace(base, temperatures={"SOD": 1.5})
    assert Recipe.from_dict(json.loads(json.dumps(calibrated.as_dict()))).temperatures == {"SOD": 1.5}
    with pytest.raises(ValueError, match="head SIC is a regression"):
        replace(base, temperatures={"SIC": 2.0})
    legacy = Recipe.load(LEGACY_RECIPE)  # a version 1 recipe, logged before calibration
    assert legacy.temperatures == {}
    charter = combine([(legacy, fixed()), (replace(legacy, temperatures={"SOD": 1.5}), fixed())], "cpu")
    assert [dict(m.temperatures) for m in charter.predictor.members] == [{}, {"SOD": 1.5}]


# --- products ---------------------------------------------------------------------------------


def test_products_hold_the_uncertainty_layers(ready_dir, tmp_path):
    scene = read_scene(prep_files(ready_dir)[0])
    valid = scene.sar_valid
    assert (~valid).any() and valid.any()
    halves = np.tile(np.arange(scene.shape[1]) >= scene.shape[1] // 2, (scene.shape[0], 1)).astype(np.uint8)
    charts = {c: halves for c in CHART_NAMES}  # two polygons
    confidence = np.random.default_rng(0).uniform(size=scene.shape).astype(np.float32)
    layers = {"SIC_spread": np.full(scene.shape, 0.4, np.float32), "SOD_confidence": confidence,
              "FLOE_confidence": np.full(scene.shape, 0.75, np.float32)}  # fmt: skip
    files = write_products(tmp_path, scene, ChartPrediction(charts, None, layers), {"model_uri": "test"}, True,
                           ("netcdf", "geotiff", "vector"))  # fmt: skip
    named = {p.name.removeprefix(f"{scene.scene_id}_"): p for p in files}
    assert set(named) == {"charts.nc", "charts.gpkg", *(f"{n}.tif" for n in (*CHART_NAMES, *layers))}
    with netCDF4.Dataset(named["charts.nc"]) as ds:
        ds.set_auto_mask(False)
        var = ds["SOD_confidence"]
        assert var.dtype == np.uint8 and var._FillValue == IGNORE_INDEX and var.units == "%" and var.long_name
        stored = var[:]
        assert np.all(stored[~valid] == IGNORE_INDEX)
        np.testing.assert_array_equal(stored[valid], np.rint(100 * confidence[valid]))
        assert np.all(ds["SIC_spread"][:][valid] == 4)  # 0.4 class steps = 4 % concentration
        assert "percent concentration" in ds["SIC_spread"].comment
    with rasterio.open(named["SOD_confidence.tif"]) as tif, rasterio.open(named["SOD.tif"]) as chart:
        (gcps, crs), (chart_gcps, chart_crs) = tif.gcps, chart.gcps
        assert crs == chart_crs and [(g.row, g.col, g.x, g.y) for g in gcps] == [
            (g.row, g.col, g.x, g.y) for g in chart_gcps
        ]
        assert tif.nodata == IGNORE_INDEX and tif.tags(1)["LAYER"] == "SOD_confidence" and tif.tags()["model_uri"]
        np.testing.assert_array_equal(tif.read(1), stored)
    meta, _, _, columns = pyogrio.raw.read(named["charts.gpkg"], layer=LAYER)
    table = dict(zip(meta["fields"], columns))
    np.testing.assert_allclose(table["FLOE_conf"], 75)
    np.testing.assert_allclose(table["SIC_spread"], 4)
    assert 30 < float(np.average(table["SOD_conf"], weights=table["PIXELS"])) < 70
    assert not list(tmp_path.glob(".*"))  # every file written atomically


# --- training and evaluate ----------------------------------------------------------------------


def test_training_calibrates_the_model_and_evaluate_logs_the_ece(ready_dir, test_dir, tmp_path, tracking, monkeypatch):
    monkeypatch.setattr(calibration, "MIN_CLASSES", 1)  # the tiny validation scene holds one class per chart
    model_uri, run_id = train_tiny_model(ready_dir, tmp_path, tracking, EXPERIMENT)
    metrics = mlflow.get_run(run_id).data.metrics
    model = load_chart_model(model_uri, device="cpu", tile=64, uncertainty=True)
    assert set(model.recipe.temperatures) == {"SOD", "FLOE"} and "temperature_SIC" not in metrics
    for chart, temperature in model.recipe.temperatures.items():
        assert metrics[f"temperature_{chart}"] == pytest.approx(temperature)
        assert TEMPERATURE_RANGE[0] <= temperature <= TEMPERATURE_RANGE[1] and metrics[f"calibration_pixels_{chart}"]
        # a model trained two batches may get a worse ECE from its NLL-optimal temperature: both are logged
        assert (
            0 <= metrics[f"best_val_{chart}_ece"] <= 100 and 0 <= metrics[f"best_val_{chart}_ece_uncalibrated"] <= 100
        )
    out = model.predict(None, np.zeros((1, len(model.recipe.variables), 20, 24), np.float32))
    assert out["SOD_confidence"].shape == (1, 20, 24) and "SIC_spread" in out

    result = evaluate(model_uri, test_dir, device="cpu", options=TileOptions(64, 32))
    for chart in ("SOD", "FLOE"):
        assert 0 <= result.metrics[f"test_{chart}_ece"] <= 100
        assert 0 <= result.metrics[f"test_{chart}_ece_uncalibrated"] <= 100
    assert "test_SIC_ece" not in result.metrics
    logged = mlflow.get_run(result.run_id).data.metrics
    assert logged["test_SOD_ece"] == pytest.approx(result.metrics["test_SOD_ece"])
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id)}
    assert {"reliability.png", "reliability.json"} <= artifacts
    tables = result.result.reliability["SOD"]
    assert set(tables) == {"calibrated", "uncalibrated"}
    assert tables["calibrated"].pixels == result.result.pooled.pixels["SOD"]  # the scored pixels

    charter, _ = load_charter([model_uri], "cpu", TileOptions(64, 32))  # what predict --uncertainty does per scene
    with open_scene(prep_files(test_dir)[0], reference=True) as scene:
        prediction = charter.predict_scene(scene, uncertainty=True)
        files = write_products(tmp_path, scene, prediction, {}, charter.sic_value, ("netcdf", "geotiff"))
    layers = {"SIC_spread", "SOD_confidence", "SOD_entropy", "FLOE_confidence", "FLOE_entropy"}
    assert set(prediction.uncertainty) == layers and prediction.uncertainty["SOD_confidence"].shape == scene.shape
    assert {f"{scene.scene_id}_{layer}.tif" for layer in layers} <= {p.name for p in files}
    with netCDF4.Dataset(files[0]) as ds:
        assert layers <= set(ds.variables) and ds["SOD_confidence"][:].max() <= 100


def test_training_without_validation_scenes_keeps_temperature_one_and_says_so(ready_dir, tmp_path, tracking):
    store = tiny_store(ready_dir, tmp_path / "store", val_scenes=0)
    lines: list[str] = []
    config = TrainConfig(store=str(store), out=str(tmp_path / "ckpt"), epochs=1, batches_per_epoch=1, batch_size=2,
                         patch_size=32, unet_filters="4,4,8,8", workers=0, device="cpu")  # fmt: skip
    result = train(config, echo=lines.append)
    assert any("not calibrated (temperatures 1)" in line and "--val-scenes" in line for line in lines), lines
    run = mlflow.get_run(result.run_id)
    assert "not calibrated" in run.data.tags["seaice.calibration"]
    assert not any(name.startswith("temperature_") for name in run.data.metrics)
    assert load_chart_model(result.model_uri, device="cpu").recipe.temperatures == {}
