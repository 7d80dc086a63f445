"""Official scoring against sklearn by hand, every other metric against sklearn, per-scene scores, the upload
package and `seaice score`."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn import metrics as skm
from sklearn.metrics import f1_score, r2_score

from seaice_mlflow.cli import cli
from seaice_mlflow.core.errors import SceneError, SeaIceError
from seaice_mlflow.core.metrics import (
    N_VALUES,
    ScoreBoard,
    combined_score,
    confusion_matrix,
    head_metrics,
    head_score,
)
from seaice_mlflow.tasks.autoice.baseline import per_pixel_baseline
from seaice_mlflow.tasks.autoice.charts import AUTOICE, CHART_NAMES, CHARTS
from seaice_mlflow.tasks.autoice.files.naming import find_scene_files
from seaice_mlflow.tasks.autoice.files.prep import read_charts
from seaice_mlflow.tasks.autoice.files.reader import find_references, read_scene
from seaice_mlflow.tasks.autoice.leaderboard import score_upload_package
from seaice_mlflow.tasks.autoice.upload import package_scenes, read_upload_package, write_upload_package


def starter_pack_scores(references, predictions):
    """The starter pack's recipe written out: pool valid pixels, sklearn metrics, round, weight."""
    scores = {}
    for chart in CHART_NAMES:
        true = np.concatenate([r[chart][r[chart] != 255] for r in references]).astype(np.float64)
        pred = np.concatenate([p[chart][r[chart] != 255] for r, p in zip(references, predictions)])
        metric = r2_score(true, pred) if chart == "SIC" else f1_score(true, pred, average="weighted")
        scores[chart] = np.round(metric * 100, 3)
    combined = np.round((2 * scores["SIC"] + 2 * scores["SOD"] + scores["FLOE"]) / 5, 3)
    return combined, scores


def random_scene(rng, shape, hit=0.7):
    ref = {"SIC": rng.integers(0, 11, shape), "SOD": rng.integers(0, 6, shape), "FLOE": rng.integers(0, 7, shape)}
    for chart in CHART_NAMES:
        ref[chart] = np.where(rng.random(shape) < 0.3, 255, ref[chart]).astype(np.uint8)
    pred = {}
    for chart, top in (("SIC", 12), ("SOD", 7), ("FLOE", 8)):  # includes the spare channel indices
        noise = rng.integers(0, top, shape)
        pred[chart] = np.where((rng.random(shape) < hit) & (ref[chart] != 255), ref[chart], noise).astype(np.uint8)
    return ref, pred


@pytest.mark.parametrize("seed", range(25))
def test_pooled_score_equals_starter_pack(seed):
    rng = np.random.default_rng(seed)
    scenes = [random_scene(rng, (int(rng.integers(5, 60)), int(rng.integers(5, 60))), rng.random()) for _ in range(3)]
    board = ScoreBoard(AUTOICE)
    for i, (ref, pred) in enumerate(scenes):
        board.add(f"s{i}", ref, pred)
    combined, scores = starter_pack_scores([r for r, _ in scenes], [p for _, p in scenes])
    pooled = board.pooled()
    assert pooled.combined == combined
    assert pooled.charts == scores


def test_edge_cases_match_sklearn():
    constant = np.full(50, 4)
    for pred in (constant, constant + 1, np.arange(50) % 11):
        cm = confusion_matrix(constant, pred)
        assert head_score(CHARTS["SIC"].score_metric, cm) == np.round(r2_score(constant, pred) * 100, 3)
        assert head_score(CHARTS["SOD"].score_metric, cm) == np.round(
            f1_score(constant, pred, average="weighted") * 100, 3
        )
    assert np.isnan(head_score(CHARTS["SIC"].score_metric, confusion_matrix(np.full(4, 255), np.zeros(4))))


def percent(value: float) -> float:
    return float(np.round(value * 100, 3))


def sklearn_metrics(head, true: np.ndarray, pred: np.ndarray) -> tuple[dict, dict]:
    """(head-level metrics, per-class metrics) of scikit-learn on the valid pixels, as HeadMetrics has them."""
    ratios = {
        "precision": skm.precision_score,
        "recall": skm.recall_score,
        "f1": skm.f1_score,
        "iou": skm.jaccard_score,
    }
    scalars = {"accuracy": percent(skm.accuracy_score(true, pred))}
    for name, metric in ratios.items():
        scalars[name] = percent(metric(true, pred, average="weighted", zero_division=0))
        macro = metric(true, pred, average="macro", zero_division=0)  # labels=None: values in either
        scalars["mean_iou" if name == "iou" else f"macro_{name}"] = percent(macro)
    if head.kind == "regression":
        scalars["r2"] = percent(skm.r2_score(true, pred))
        scalars["rmse"] = float(np.round(np.sqrt(skm.mean_squared_error(true, pred)), 3))
        scalars["mae"] = float(np.round(skm.mean_absolute_error(true, pred), 3))
    labels = sorted(set(range(head.n_classes)) | set(np.unique(np.concatenate([true, pred])).tolist()))
    names = [head.class_names[v] if v < head.n_classes else str(v) for v in labels]
    per_value = {n: metric(true, pred, labels=labels, average=None, zero_division=0) for n, metric in ratios.items()}
    per_class = {
        name: {**{n: percent(v[i]) for n, v in per_value.items()}, "pixels": int((true == labels[i]).sum())}
        for i, name in enumerate(names)
    }
    return scalars, per_class


def assert_metrics_equal_sklearn(board: ScoreBoard, references, predictions) -> None:
    table = board.metric_table()
    for head in board.task.heads:
        true = np.concatenate([r[head.name][r[head.name] != 255] for r in references]).astype(np.int64)
        pred = np.concatenate([p[head.name][r[head.name] != 255] for r, p in zip(references, predictions)])
        scalars, per_class = sklearn_metrics(head, true, pred.astype(np.int64))
        got = table.heads[head.name].as_dict()
        assert {k: v for k, v in got.items() if k != "per_class"} == scalars, head.name
        assert got["per_class"] == per_class, head.name


@pytest.mark.parametrize("seed", range(12))
def test_every_metric_equals_sklearn(seed):
    """Pooled over scenes with ignored pixels, spare predicted values, absent classes and a constant reference."""
    rng = np.random.default_rng(seed)
    scenes = [random_scene(rng, (int(rng.integers(5, 40)), int(rng.integers(5, 40))), rng.random()) for _ in range(3)]
    ref, pred = scenes[0]
    for chart, keep in (("SIC", (0, 3, 10)), ("SOD", (1, 4)), ("FLOE", (2,))):  # only some classes referenced
        ref[chart] = np.where(np.isin(ref[chart], keep), ref[chart], 255).astype(np.uint8)
        if seed % 3 == 0:  # some classes never predicted either
            pred[chart] = np.where(np.isin(pred[chart], keep), pred[chart], keep[0]).astype(np.uint8)
    if seed % 4 == 0:  # every scene's reference one class
        for r, _ in scenes:
            for chart in CHART_NAMES:
                r[chart] = np.where(r[chart] == 255, 255, 2).astype(np.uint8)
    board = ScoreBoard(AUTOICE)
    for i, (r, p) in enumerate(scenes):
        board.add(f"s{i}", r, p)
    assert_metrics_equal_sklearn(board, [r for r, _ in scenes], [p for _, p in scenes])


def test_every_metric_of_a_constant_reference_and_an_empty_head():
    constant = np.full(50, 4, np.uint8)
    for pred in (constant, constant + 1, (np.arange(50) % 11).astype(np.uint8)):
        board = ScoreBoard(AUTOICE)
        board.add("c", {c: constant for c in CHART_NAMES}, {c: pred for c in CHART_NAMES})
        assert_metrics_equal_sklearn(board, [{c: constant for c in CHART_NAMES}], [{c: pred for c in CHART_NAMES}])
    empty = head_metrics(CHARTS["SIC"], np.zeros((N_VALUES, N_VALUES), np.int64)).as_dict()
    assert all(np.isnan(v) for k, v in empty.items() if k != "per_class")
    assert all(np.isnan(c["f1"]) and c["pixels"] == 0 for c in empty["per_class"].values())


def test_metric_table_keeps_the_official_scores_and_names():
    rng = np.random.default_rng(3)
    board = ScoreBoard(AUTOICE)
    for i in range(2):
        board.add(f"s{i}", *random_scene(rng, (30, 20)))
    pooled, table = board.pooled(), board.metric_table()
    assert pooled.metrics("test") == {
        "test_SIC_r2": pooled.charts["SIC"],
        "test_SOD_f1": pooled.charts["SOD"],
        "test_FLOE_f1": pooled.charts["FLOE"],
        "test_combined": pooled.combined,
    }
    metrics = table.metrics("test")
    assert metrics["test_SIC_r2"] == pooled.charts["SIC"]
    assert metrics["test_SOD_f1"] == pooled.charts["SOD"] and metrics["test_FLOE_f1"] == pooled.charts["FLOE"]
    named = ("accuracy", "precision", "recall", "f1", "macro_precision", "macro_recall", "macro_f1", "iou", "mean_iou")
    assert set(metrics) == {f"test_{c}_{m}" for c in CHART_NAMES for m in named} | {
        "test_SIC_r2",
        "test_SIC_rmse",
        "test_SIC_mae",
    }
    assert list(table.heads["SOD"].per_class) == [*CHARTS["SOD"].class_names, "6"]  # a spare value predicted
    assert table.heads["SOD"].per_class["6"].pixels == 0


def test_scores_are_rounded_before_weighting():
    assert combined_score(AUTOICE, {"SIC": 92.0004, "SOD": 88.6, "FLOE": 70.3}) == pytest.approx(86.3, abs=1e-3)
    assert combined_score(AUTOICE, {"SIC": 75.2, "SOD": 76.4, "FLOE": 69.4}) == 74.52


def test_per_scene_scores():
    rng = np.random.default_rng(1)
    board = ScoreBoard(AUTOICE)
    scenes = [random_scene(rng, (30, 40)) for _ in range(2)]
    for i, (ref, pred) in enumerate(scenes):
        board.add(f"s{i}", ref, pred)
    per_scene = board.per_scene()
    for i, (ref, pred) in enumerate(scenes):
        assert per_scene[f"s{i}"].combined == starter_pack_scores([ref], [pred])[0]
    with pytest.raises(ValueError, match="prediction is"):
        board.add("bad", scenes[0][0], {c: np.zeros((3, 3), np.uint8) for c in CHART_NAMES})


def test_upload_package_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    predictions = {f"2018010{i}T000000_dmi": random_scene(rng, (20 + i, 31))[1] for i in range(1, 4)}
    path = write_upload_package(tmp_path / "upload_package.nc", predictions)
    assert not list(tmp_path.glob(".*tmp"))
    back = read_upload_package(path)
    assert set(back) == set(predictions)
    for scene, charts in predictions.items():
        for chart in CHART_NAMES:
            assert back[scene][chart].dtype == np.uint8
            np.testing.assert_array_equal(back[scene][chart], charts[chart])
    import xarray as xr

    with xr.open_dataset(path) as ds:
        var = ds["20180101T000000_dmi_SIC"]
        assert var.dims == ("20180101T000000_dmi_SIC_dim0", "20180101T000000_dmi_SIC_dim1")
        assert var.encoding["zlib"] and var.encoding["complevel"] == 1


def test_upload_package_validation(tmp_path):
    import netCDF4

    path = tmp_path / "upload_package.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("a", 2)
        ds.createVariable("20180101T000000_dmi_SIC", "u1", ("a",))[:] = 0
    with pytest.raises(SceneError, match="lack some of SIC, SOD, FLOE"):
        package_scenes(path)


def perfect_package(test_dir, path):
    refs = find_references(test_dir)
    return write_upload_package(path, {k: read_charts(p) for k, p in refs.items()})


def test_score_perfect_and_partial_packages(test_dir, tmp_path):
    package = perfect_package(test_dir, tmp_path / "upload_package.nc")
    pooled = score_upload_package(test_dir, package).pooled()
    assert pooled.combined == 100.0
    refs = find_references(test_dir)
    first = sorted(refs)[0]
    partial = write_upload_package(tmp_path / "partial.nc", {first: read_charts(refs[first])})
    with pytest.raises(SeaIceError, match="no prediction for 1 reference scene"):
        score_upload_package(test_dir, partial)
    assert score_upload_package(test_dir, partial, partial=True).pooled().combined == 100.0


def test_score_command(test_dir, tmp_path):
    package = perfect_package(test_dir, tmp_path / "upload_package.nc")
    runner = CliRunner()
    result = runner.invoke(cli, ["score", "--reference", str(test_dir), "--predictions", str(package), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["combined"] == 100.0 and out["SIC"] == 100.0 and len(out["scenes"]) == 2
    text = runner.invoke(cli, ["score", "--reference", str(test_dir), "--predictions", str(package)])
    assert "pooled (official)" in text.output and "100.000" in text.output
    official = runner.invoke(cli, ["score", "--reference", str(test_dir), "--predictions", str(package), "--json"])
    assert json.loads(official.output) == out and "metrics" not in out  # --metrics official is the default
    wrong = runner.invoke(cli, ["score", "--reference", str(tmp_path), "--predictions", str(package)])
    assert wrong.exit_code == 1 and "no reference charts" in wrong.output and "Traceback" not in wrong.output


def test_score_command_with_every_metric(test_dir, tmp_path):
    refs = find_references(test_dir)
    predictions = {k: read_charts(p) for k, p in refs.items()}
    first = sorted(predictions)[0]
    predictions[first]["SOD"] = np.where(predictions[first]["SOD"] == 255, 255, 0).astype(np.uint8)  # all water
    package = write_upload_package(tmp_path / "upload_package.nc", predictions)
    args = ["score", "--reference", str(test_dir), "--predictions", str(package), "--metrics", "all"]
    runner = CliRunner()
    result = runner.invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    official = score_upload_package(test_dir, package).pooled().as_dict()
    assert set(out) == {*official, "scenes", "metrics"} and {k: out[k] for k in official} == official
    assert set(out["metrics"]) == set(CHART_NAMES)
    named = {"accuracy", "precision", "recall", "f1", "macro_precision", "macro_recall", "macro_f1", "iou", "mean_iou"}
    for chart in CHART_NAMES:
        metrics = out["metrics"][chart]
        assert set(metrics) == named | {"per_class"} | ({"r2", "rmse", "mae"} if chart == "SIC" else set())
        assert list(metrics["per_class"]) == list(CHARTS[chart].class_names)
        for values in metrics["per_class"].values():
            assert set(values) == {"precision", "recall", "f1", "iou", "pixels"}
        assert sum(c["pixels"] for c in metrics["per_class"].values()) == out["pixels"][chart]
    assert out["metrics"]["SIC"]["r2"] == out["SIC"] == 100.0 and out["metrics"]["SIC"]["rmse"] == 0.0
    assert out["metrics"]["SOD"]["f1"] == out["SOD"] < 100 and out["metrics"]["FLOE"]["mean_iou"] == 100.0
    text = runner.invoke(cli, args)
    assert text.exit_code == 0, text.output
    assert "pooled (official)" in text.output and "SOD (pooled): accuracy" in text.output
    assert "thick first-year ice" in text.output and "RMSE 0.000" in text.output and "macro (present)" in text.output
    bad = runner.invoke(cli, [*args[:-1], "every"])
    assert bad.exit_code == 2 and "'official', 'all'" in bad.output


def test_per_pixel_baseline_scores_every_referenced_pixel(ready_dir, test_dir):
    train, test = find_scene_files(ready_dir), find_scene_files(test_dir)
    scores = per_pixel_baseline(train, test, n_pixels=2_000, seed=1)
    references = [read_scene(p).charts for p in test]
    for chart in CHART_NAMES:
        assert scores.pixels[chart] == sum(int((r[chart] != 255).sum()) for r in references)
        assert scores.charts[chart] <= 100
    assert scores.combined > 0
    assert per_pixel_baseline(train, test, n_pixels=2_000, seed=1) == scores  # seeded


def test_score_by_stratum_equals_the_official_score_of_each_subset(test_dir, tmp_path):
    refs = find_references(test_dir)
    predictions = {k: read_charts(p) for k, p in refs.items()}
    first = sorted(predictions)[0]
    predictions[first]["SOD"] = np.where(predictions[first]["SOD"] == 255, 255, 0).astype(np.uint8)
    package = write_upload_package(tmp_path / "upload_package.nc", predictions)
    table = tmp_path / "seasons.csv"
    table.write_text("scene,season\n" + "".join(f"{s},{'melt' if s == first else 'freeze'}\n" for s in refs))
    args = ["score", "--reference", str(test_dir), "--predictions", str(package), "--by", "season,service"]
    runner = CliRunner()
    result = runner.invoke(cli, [*args, "--season-table", str(table), "--json"])
    assert result.exit_code == 0, result.output
    strata = {(s["by"], s["stratum"]): s for s in json.loads(result.output)["strata"]}
    assert {key for key, _ in strata} == {"season", "service"}
    assert {("season", "melt"), ("season", "freeze")} <= set(strata)
    board = score_upload_package(test_dir, package)
    for (key, value), stratum in strata.items():
        alone = ScoreBoard(AUTOICE, {s: board.scenes[s] for s in stratum["scenes"]}).pooled().as_dict()
        assert {k: stratum[k] for k in alone} == alone, (key, value)
        assert stratum["season_source"] == "table"
    assert strata[("season", "melt")]["scenes"] == [first] and strata[("season", "melt")]["SOD"] < 100
    text = runner.invoke(cli, args)  # no table: the month/latitude rule, said in the output
    assert text.exit_code == 0 and "season approximated" in text.output
    bad = runner.invoke(cli, [*args[:-1], "seasons"])
    assert bad.exit_code == 1 and "option --by: 'seasons' is not one of" in bad.output
