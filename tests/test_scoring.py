"""Official scoring against sklearn by hand, per-scene scores, the upload package and `seaice score`."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import f1_score, r2_score

from seaice_mlflow.cli import cli
from seaice_mlflow.core.errors import SceneError, SeaIceError
from seaice_mlflow.core.metrics import ScoreBoard, combined_score, confusion_matrix, head_score
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
    wrong = runner.invoke(cli, ["score", "--reference", str(tmp_path), "--predictions", str(package)])
    assert wrong.exit_code == 1 and "no reference charts" in wrong.output and "Traceback" not in wrong.output


def test_per_pixel_baseline_scores_every_referenced_pixel(ready_dir, test_dir):
    train, test = find_scene_files(ready_dir), find_scene_files(test_dir)
    scores = per_pixel_baseline(train, test, n_pixels=2_000, seed=1)
    references = [read_scene(p).charts for p in test]
    for chart in CHART_NAMES:
        assert scores.pixels[chart] == sum(int((r[chart] != 255).sum()) for r in references)
        assert scores.charts[chart] <= 100
    assert scores.combined > 0
    assert per_pixel_baseline(train, test, n_pixels=2_000, seed=1) == scores  # seeded
