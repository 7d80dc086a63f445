"""seaice evaluate: official scores logged to MLflow equal `seaice score` on the logged package."""

from __future__ import annotations

import csv
import filecmp
import json
import re
import shutil
import warnings
from pathlib import Path

import mlflow
import pytest
import torch
from click.testing import CliRunner

from seaice_mlflow.cli import cli
from seaice_mlflow.models import ModelSpec, UNetOptions, build_model
from seaice_mlflow.tasks.autoice.charts import AUTOICE, CHART_NAMES
from seaice_mlflow.tasks.autoice.files.naming import find_scene_files, parse_scene_name
from seaice_mlflow.tasks.autoice.files.variables import SCENE_VARIABLES
from seaice_mlflow.tasks.autoice.logged_models import load_charter
from seaice_mlflow.tasks.autoice.pyfunc import log_chart_model
from seaice_mlflow.tasks.autoice.recipe import Recipe
from seaice_mlflow.tracking.runs import SCORED_ON_TRAINING_TAG
from tests.conftest import prep_files
from tests.tiny_model import ROOT, train_tiny_model

EXPERIMENT = "evaluate-test"
FAST = ["--device", "cpu", "--tile", "64", "--overlap", "32"]


@pytest.fixture(scope="module")
def trained(store_uri, ready_dir, tmp_path_factory) -> tuple[str, str]:
    """(models:/m-... URI, training run id) of a tiny model trained once for this module."""
    return train_tiny_model(ready_dir, tmp_path_factory.mktemp("evaluate-train"), store_uri, EXPERIMENT)


def run_id_of(output: str) -> str:
    return re.search(r"^run ([0-9a-f]{32})", output, re.M).group(1)


def evaluate(*args: str):
    return CliRunner().invoke(cli, ["evaluate", *args])


@pytest.mark.parametrize("data", ["test_dir", "raw_dir"])
def test_logged_scores_equal_seaice_score_of_the_logged_package(request, data, trained, tracking, tmp_path):
    data_dir = request.getfixturevalue(data)
    model_uri, train_run = trained
    copy = tmp_path / "out" / "upload_package.nc"
    result = evaluate("--model-uri", model_uri, "--data-dir", str(data_dir), "--upload-package", str(copy), *FAST)
    assert result.exit_code == 0, result.output
    run = mlflow.get_run(run_id_of(result.output))
    assert run.info.status == "FINISHED" and run.data.tags["seaice.entry_point"] == "evaluate"
    assert run.info.run_name == f"evaluate {model_uri.removeprefix('models:/')[:10]} on 2 scenes"
    assert run.data.params["model_uri"] == model_uri and run.data.params["tile"] == "64"
    tags = run.data.tags
    assert tags["seaice.model_uri"] == model_uri and tags["seaice.model_id"] == model_uri.removeprefix("models:/")
    assert tags["seaice.source_run"] == train_run
    seen = data == "raw_dir"  # the training scenes as raw files
    assert tags[SCORED_ON_TRAINING_TAG] == str(seen).lower() and run.data.metrics["eval_training_scenes"] == 2 * seen

    artifacts = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path / "a")))
    package = artifacts / "upload_package.nc"
    assert filecmp.cmp(package, copy, shallow=False)
    scored = CliRunner().invoke(
        cli, ["score", "--reference", str(data_dir), "--predictions", str(package), "--metrics", "all", "--json"]
    )
    assert scored.exit_code == 0, scored.output
    official = json.loads(scored.output)
    metrics = run.data.metrics
    assert metrics["test_combined"] == official["combined"]
    for chart, name in zip(CHART_NAMES, ("test_SIC_r2", "test_SOD_f1", "test_FLOE_f1")):
        assert metrics[name] == official[chart]
        assert metrics[f"eval_pixels_{chart}"] == official["pixels"][chart]
    assert metrics["eval_scenes"] == len(official["scenes"]) == 2
    every = {  # every metric of `seaice score --metrics all`, but not the per-class values
        f"test_{chart}_{name}": value
        for chart, values in official["metrics"].items()
        for name, value in values.items()
        if name != "per_class"
    }
    assert {"test_SOD_accuracy", "test_SOD_macro_f1", "test_SOD_mean_iou", "test_SIC_rmse", "test_SIC_mae"} <= set(
        every
    )
    calibration = {k for k in metrics if k.endswith(("_ece", "_ece_uncalibrated"))}  # from probabilities, not charts
    assert calibration == {f"test_{c}_{m}" for c in ("SOD", "FLOE") for m in ("ece", "ece_uncalibrated")}
    assert {
        k: v for k, v in metrics.items() if k.startswith("test_") and k not in {"test_combined", *calibration}
    } == every
    with open(artifacts / "per_class_metrics.csv") as f:
        per_class = list(csv.DictReader(f))
    assert [(r["chart"], r["class"]) for r in per_class] == [
        (chart, name) for chart in CHART_NAMES for name in official["metrics"][chart]["per_class"]
    ]
    for row in per_class:
        expected = official["metrics"][row["chart"]]["per_class"][row["class"]]
        assert {k: float(v) for k, v in row.items() if k not in ("chart", "class")} == expected

    with open(artifacts / "scores_per_scene.csv") as f:
        rows = {row["scene_id"]: row for row in csv.DictReader(f)}
    assert set(rows) == set(official["scenes"])
    for scene_id, row in rows.items():
        assert float(row["combined"]) == official["scenes"][scene_id]["combined"]
        assert float(row["SOD_f1"]) == official["scenes"][scene_id]["SOD"]
    confusions = json.loads((artifacts / "confusion_matrices.json").read_text())
    for chart in CHART_NAMES:
        assert sum(map(sum, confusions[chart]["counts"])) == official["pixels"][chart]
    assert {p.name for p in (artifacts / "quicklooks").iterdir()} == {f"{s}.png" for s in official["scenes"]}
    assert (artifacts / "confusion_counts.png").stat().st_size and (artifacts / "confusion_normalised.png").is_file()


def test_registered_model_by_alias_stage_version_and_run(trained, tracking):
    model_uri, train_run = trained
    client = mlflow.MlflowClient()
    version = str(mlflow.register_model(model_uri, "eval-charts").version)
    client.set_registered_model_alias("eval-charts", "champion", version)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage("eval-charts", version, "Production")
    model_id = model_uri.removeprefix("models:/")
    for uri in (
        "models:/eval-charts@champion",
        "models:/eval-charts/Production",
        f"models:/eval-charts/{version}",
        "models:/eval-charts/latest",
    ):
        _, [ref] = load_charter([uri], "cpu")
        assert (ref.name, ref.version, ref.model_id, ref.run_id) == ("eval-charts", version, model_id, train_run), uri
        assert ref.loaded_uri == f"models:/eval-charts/{version}" and ref.canonical_uri == model_uri
    _, [ref] = load_charter([f"runs:/{train_run}/model"], "cpu")
    assert ref.model_id == model_id and ref.name is None


def test_evaluate_by_alias_tags_the_registered_version(trained, tracking, test_dir):
    model_uri, _ = trained
    client = mlflow.MlflowClient()
    version = str(mlflow.register_model(model_uri, "alias-charts").version)
    client.set_registered_model_alias("alias-charts", "champion", version)
    result = evaluate("--model-uri", "models:/alias-charts@champion", "--data-dir", str(test_dir), *FAST)
    assert result.exit_code == 0, result.output
    tags = mlflow.get_run(run_id_of(result.output)).data.tags
    assert tags["seaice.model_uri_given"] == "models:/alias-charts@champion"
    assert tags["seaice.registered_model"] == f"alias-charts/{version}" and tags["seaice.model_uri"] == model_uri


def test_ensemble_of_one_model_twice_scores_as_the_model(trained, tracking, test_dir):
    model_uri, _ = trained
    single = evaluate("--model-uri", model_uri, "--data-dir", str(test_dir), *FAST)
    double = evaluate("--model-uri", f"{model_uri}, {model_uri}", "--data-dir", str(test_dir), *FAST)
    assert single.exit_code == 0 and double.exit_code == 0, double.output
    one, two = (mlflow.get_run(run_id_of(r.output)) for r in (single, double))
    assert {k: v for k, v in one.data.metrics.items() if k.startswith("test_")} == {
        k: v for k, v in two.data.metrics.items() if k.startswith("test_")
    }
    assert two.data.tags["seaice.ensemble_size"] == "2" and two.data.tags["seaice.model_uri"].count(",") == 1


def test_evaluate_by_stratum_logs_each_strata_official_score(trained, tracking, test_dir):
    model_uri, _ = trained
    result = evaluate("--model-uri", model_uri, "--data-dir", str(test_dir), "--by", "season,service", *FAST)
    assert result.exit_code == 0, result.output
    run = mlflow.get_run(run_id_of(result.output))
    assert run.data.params["by"] == "season,service"
    client = mlflow.MlflowClient()
    table = client.download_artifacts(run.info.run_id, "strata.csv")
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert {r["by"] for r in rows} == {"season", "service"} and {
        a.path for a in client.list_artifacts(run.info.run_id)
    } >= {"strata.png"}
    for row in rows:
        assert run.data.metrics[f"test_{row['label']}_combined"] == float(row["combined"])
        if int(row["n_scenes"]) == len(list(test_dir.glob("*_prep.nc"))):  # one stratum holds every scene
            assert float(row["combined"]) == run.data.metrics["test_combined"]
        assert row["season_source"] == "approximation"
    bad = evaluate("--model-uri", model_uri, "--data-dir", str(test_dir), "--by", "moon", *FAST)
    assert bad.exit_code == 1 and "option --by: 'moon' is not one of" in bad.output


def test_ensemble_of_models_with_other_inputs_is_refused(trained, tracking, test_dir):
    model_uri, _ = trained
    spec = ModelSpec("unet", len(SCENE_VARIABLES), AUTOICE.outputs(), UNetOptions((2, 2)))
    with mlflow.start_run():
        other = log_chart_model(build_model(spec), Recipe(spec, SCENE_VARIABLES)).model_uri
    result = evaluate("--model-uri", model_uri, "--model-uri", other, "--data-dir", str(test_dir), *FAST)
    assert result.exit_code == 1
    assert f"option --model-uri: {other} takes inputs" in result.output and "same --variables" in result.output


def test_bad_scene_is_reported_and_skipped(trained, tracking, test_dir, tmp_path):
    model_uri, _ = trained
    folder = tmp_path / "scenes"
    shutil.copytree(test_dir, folder)
    (folder / "20990101T000000_dmi_prep.nc").write_bytes(b"not netcdf at all")
    shutil.copyfile(prep_files(test_dir)[0], folder / "20991231T235959_cis_prep.nc")  # no reference beside it
    result = evaluate("--model-uri", model_uri, "--data-dir", str(folder), *FAST)
    assert result.exit_code == 1
    failed = [line for line in result.output.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "20990101T000000_dmi_prep.nc: cannot be opened as netCDF" in failed[0]
    assert re.search(r"skipped .*20991231T235959_cis_prep.nc: no reference charts", result.output)
    run = mlflow.get_run(run_id_of(result.output))
    assert run.info.status == "FINISHED" and run.data.metrics["eval_scenes"] == 2
    assert run.data.metrics["eval_scenes_failed"] == 1 and run.data.metrics["eval_scenes_skipped"] == 1
    text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/scenes_not_scored.txt")
    assert "20990101T000000_dmi_prep.nc" in text


def test_bad_parameters_fail_in_one_line(trained, tracking, test_dir, tmp_path):
    model_uri, _ = trained
    result = evaluate("--model-uri", "models:/no-such-model@champion", "--data-dir", str(test_dir), *FAST)
    assert result.exit_code == 1 and "option --model-uri: models:/no-such-model@champion" in result.output
    result = evaluate("--model-uri", model_uri, "--data-dir", str(tmp_path), *FAST)
    assert result.exit_code == 1 and "holds no AI4Arctic scene files" in result.output
    result = evaluate("--model-uri", model_uri, "--data-dir", str(test_dir), "--upload-package", str(tmp_path), *FAST)
    assert result.exit_code == 1 and "option --upload-package" in result.output
    if not torch.cuda.is_available():
        result = evaluate("--model-uri", model_uri, "--data-dir", str(test_dir), "--device", "cuda")
        assert result.exit_code == 1
        assert "Error: option --device: cuda was asked for but no GPU is visible" in result.output
    assert "Traceback" not in result.output


def test_scoring_the_training_scenes_warns_and_tags_the_run(trained, tracking, ready_dir):
    model_uri, _ = trained
    scenes = sorted(parse_scene_name(f).key for f in find_scene_files(ready_dir))
    recipe = load_charter([model_uri], "cpu")[0].recipe
    assert sorted(recipe.scenes["train"] + recipe.scenes["val"]) == scenes  # the Trainer recorded them
    result = evaluate("--model-uri", model_uri, "--data-dir", str(ready_dir), *FAST)
    assert result.exit_code == 0, result.output
    [warning] = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert f"2 of the 2 scene(s) are training or validation scenes of the model ({', '.join(scenes)})" in warning
    run = mlflow.get_run(run_id_of(result.output))
    assert run.data.tags[SCORED_ON_TRAINING_TAG] == "true" and run.data.metrics["eval_training_scenes"] == 2


def test_unwritable_upload_package_fails_before_any_scene(trained, tracking, test_dir, tmp_path):
    model_uri, _ = trained
    (tmp_path / "a-file").write_text("not a folder")
    runs_before = len(mlflow.search_runs(experiment_names=[EXPERIMENT], output_format="list"))
    result = evaluate(
        "--model-uri",
        model_uri,
        "--data-dir",
        str(test_dir),
        "--upload-package",
        str(tmp_path / "a-file" / "upload_package.nc"),
        *FAST,
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"option --upload-package: {tmp_path / 'a-file' / 'upload_package.nc'} cannot be created" in result.output
    assert "scored" not in result.output
    assert len(mlflow.search_runs(experiment_names=[EXPERIMENT], output_format="list")) == runs_before


def test_mlflow_run_evaluate(trained, tracking, test_dir, tmp_path):
    model_uri, _ = trained
    submitted = mlflow.projects.run(
        str(ROOT),
        entry_point="evaluate",
        env_manager="local",
        experiment_name="project-evaluate",
        parameters={
            "model_uri": f"{model_uri} {model_uri}",
            "data_dir": str(test_dir),
            "device": "cpu",
            "tile": 64,
            "upload_package": str(tmp_path / "upload_package.nc"),
        },
    )
    assert submitted.wait()
    run = mlflow.get_run(submitted.run_id)
    assert run.info.status == "FINISHED" and run.data.params["model_uri"] == f"'{model_uri} {model_uri}'"
    assert "test_combined" in run.data.metrics and run.data.tags["seaice.ensemble_size"] == "2"
    assert (tmp_path / "upload_package.nc").is_file()
