"""register: ranking, reuse of versions, champion only when better, stages, concurrency."""

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import mlflow
import pytest
import torch
from click.testing import CliRunner
from mlflow.models import Model

from seaice_mlflow.cli import cli
from seaice_mlflow.models import ModelSpec, UNetOptions, build_model
from seaice_mlflow.tasks.autoice.charts import AUTOICE
from seaice_mlflow.tasks.autoice.files.variables import SCENE_VARIABLES
from seaice_mlflow.tasks.autoice.pyfunc import WEIGHTS, log_chart_model
from seaice_mlflow.tasks.autoice.recipe import Recipe
from seaice_mlflow.tracking.registry import RegistryError, register_best
from seaice_mlflow.tracking.runs import MODEL_ID_TAG, MODEL_URI_TAG, SCORED_ON_TRAINING_TAG

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tracking(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    return uri


def train_run(experiment: str, value: float) -> str:
    """A FINISHED 'train' run with a tiny logged chart model and ``best_val_combined``."""
    mlflow.set_experiment(experiment)
    spec = ModelSpec("unet", len(SCENE_VARIABLES), AUTOICE.outputs(), UNetOptions((2, 2)))
    with mlflow.start_run() as run:
        mlflow.set_tags({"seaice.entry_point": "train", "seaice.store_digest": "abc123"})
        mlflow.log_metric("best_val_combined", value)
        log_chart_model(build_model(spec), Recipe(spec, SCENE_VARIABLES))
    return run.info.run_id


def model_of(run_id: str) -> str:
    """The logged model id (m-...) of a run."""
    [model] = mlflow.search_logged_models(filter_string=f"source_run_id = '{run_id}'", output_format="list")
    return model.model_id


def evaluate_run(experiment: str, train_run_id: str, value: float, on_training_scenes: bool = False) -> str:
    """A FINISHED 'evaluate' run of one model with ``test_combined``, tagged as `seaice evaluate` does."""
    mlflow.set_experiment(experiment)
    model_id = model_of(train_run_id)
    with mlflow.start_run() as run:
        mlflow.set_tags(
            {
                "seaice.entry_point": "evaluate",
                MODEL_URI_TAG: f"models:/{model_id}",
                MODEL_ID_TAG: model_id,
                SCORED_ON_TRAINING_TAG: str(on_training_scenes).lower(),
            }
        )
        mlflow.log_metric("test_combined", value)
    return run.info.run_id


def poison_weights(train_run_id: str) -> None:
    """Overwrite the logged weights of a run's model with NaN (as a diverged training would leave
    them), behind the back of ``log_chart_model`` (which may refuse such weights)."""
    model = mlflow.get_logged_model(model_of(train_run_id))
    root = Path(model.artifact_location.removeprefix("file://"))
    weights = root / Model.load(str(root / "MLmodel")).flavors["python_function"]["artifacts"][WEIGHTS]["path"]
    state = torch.load(weights, weights_only=True)
    torch.save({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()}, weights)


def source_runs(name: str) -> dict[str, str]:
    """version -> training run of every version of ``name``."""
    client = mlflow.MlflowClient()
    return {
        v.version: client.get_model_version(name, v.version).tags.get("seaice.source_run")
        for v in client.search_model_versions(f"name = '{name}'")
    }


#: `seaice register` in a process that waits, once its run has started, until every process is
#: there (a file each) and "go" exists: concurrent calls then meet in the registry at once
#: instead of being spread out by their imports.
AT_THE_BARRIER = """
import sys, time
from pathlib import Path
from seaice_mlflow.cli import main
from seaice_mlflow.tracking import registry
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
register_best = registry.register_best
def at_the_barrier(*args, **kwargs):
    ready.touch()
    while not go.exists():
        time.sleep(0.005)
    return register_best(*args, **kwargs)
registry.register_best = at_the_barrier
main(sys.argv[3:])
"""


def concurrent_registers(tmp_path: Path, calls: list[list[str]]) -> None:
    """Run `seaice register` with each argument list at the same moment; each must exit 0 cleanly."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(len(calls))]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", AT_THE_BARRIER, str(flag), str(go), "register", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for flag, args in zip(ready, calls)
    ]
    deadline = time.monotonic() + 300
    while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and "Traceback" not in err.decode(), err.decode()[-3000:]


def registry_state(name: str) -> tuple[str, list[str]]:
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias(name, "champion").version
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        production = [
            v.version for v in client.search_model_versions(f"name = '{name}'") if v.current_stage == "Production"
        ]
    return champion, production


def test_best_run_becomes_champion_and_worse_is_refused(tracking):
    train_run("first", 50.0)
    best = train_run("first", 60.0)
    promotion = register_best("first", "charts")
    assert promotion.promoted and promotion.metric == "best_val_combined" and promotion.value == 60.0
    version = mlflow.MlflowClient().get_model_version("charts", promotion.version)
    assert version.tags["seaice.source_run"] == best and version.tags["seaice.store_digest"] == "abc123"
    assert "best_val_combined = 60.000" in version.description
    assert registry_state("charts") == (promotion.version, [promotion.version])

    again = register_best("first", "charts")  # idempotent: same version, no new one
    assert again.version == promotion.version
    assert len(mlflow.MlflowClient().search_model_versions("name = 'charts'")) == 1

    train_run("second", 55.0)
    worse = register_best("second", "charts")
    assert not worse.promoted and "does not beat" in worse.message
    assert registry_state("charts") == (promotion.version, [promotion.version])

    forced = register_best("second", "charts", force=True)
    assert forced.promoted and registry_state("charts") == (forced.version, [forced.version])


def test_stage_none_keeps_only_the_alias(tracking):
    train_run("plain", 40.0)
    promotion = register_best("plain", "aliases-only", stage="none")
    assert registry_state("aliases-only") == (promotion.version, [])


def test_nothing_to_register(tracking):
    mlflow.set_experiment("empty")
    with pytest.raises(RegistryError, match="no FINISHED run"):
        register_best("empty", "charts")
    with pytest.raises(RegistryError, match="no experiment named"):
        register_best("missing", "charts")


def test_concurrent_registers_leave_one_best_champion(tracking, tmp_path):
    train_run("low", 52.0)
    train_run("high", 58.0)
    concurrent_registers(
        tmp_path, [["--experiment", experiment, "--model-name", "race"] for experiment in ("low", "high")]
    )
    client = mlflow.MlflowClient()
    versions = {
        v.version: float(client.get_model_version("race", v.version).tags["seaice.metric_value"])
        for v in client.search_model_versions("name = 'race'")
    }
    best = max(versions, key=versions.get)
    assert versions[best] == 58.0
    assert registry_state("race") == (best, [best])


def test_concurrent_registers_of_one_run_leave_one_version(tracking, tmp_path):
    run = train_run("same", 50.0)
    concurrent_registers(tmp_path, [["--experiment", "same", "--model-name", "same"]] * 4)
    [version] = source_runs("same")
    assert source_runs("same")[version] == run
    assert registry_state("same") == (version, [version])


def test_first_evaluation_does_not_move_champion_to_a_worse_model(tracking):
    good = train_run("d7", 15.834)
    first = register_best("d7", "d7-charts")
    worse = train_run("d7", 14.341)
    evaluate_run("d7", worse, 80.0)  # only the worse model is evaluated
    again = register_best("d7", "d7-charts")
    assert again.metric == "best_val_combined" and again.version == again.champion == first.version
    assert registry_state("d7-charts") == (first.version, [first.version])
    assert source_runs("d7-charts")[first.version] == good
    assert "ranked by best_val_combined" in again.message and "has no test_combined" in again.message

    evaluate_run("d7", good, 70.0)  # now both have a test score: it decides
    third = register_best("d7", "d7-charts")
    assert third.metric == "test_combined" and third.promoted and "ranked by test_combined" in third.message
    assert source_runs("d7-charts")[third.version] == worse
    assert registry_state("d7-charts") == (third.version, [third.version])


def test_scores_on_training_scenes_do_not_rank(tracking):
    good = train_run("seen", 15.0)
    worse = train_run("seen", 10.0)
    evaluate_run("seen", good, 60.0)
    evaluate_run("seen", worse, 99.0, on_training_scenes=True)  # its own training scenes
    promotion = register_best("seen", "seen-charts")  # worse has no clean test score: validation decides
    assert source_runs("seen-charts") == {promotion.version: good}
    tags = mlflow.MlflowClient().get_model_version("seen-charts", promotion.version).tags
    assert tags["seaice.metric"] == "best_val_combined" and tags["seaice.metric.test_combined"] == "60.0"


def test_unknown_experiment_is_refused_and_not_created(tracking):
    train_run("real", 45.0)
    result = CliRunner().invoke(cli, ["register", "--experiment", "reall", "--model-name", "typo-charts"])
    assert result.exit_code == 1
    assert "option --experiment: no experiment named 'reall'" in result.output and "Traceback" not in result.output
    assert mlflow.get_experiment_by_name("reall") is None


def test_model_with_non_finite_weights_is_never_registered_or_promoted(tracking):
    good = train_run("nan", 50.0)
    diverged = train_run("nan", 60.0)  # the best by its metric
    poison_weights(diverged)
    result = CliRunner().invoke(cli, ["register", "--experiment", "nan", "--model-name", "nan-charts"])
    assert result.exit_code == 0, result.output
    assert f"skipped models:/{model_of(diverged)}" in result.output and "non-finite weights" in result.output
    [version] = source_runs("nan-charts")
    assert source_runs("nan-charts")[version] == good and registry_state("nan-charts") == (version, [version])

    mlflow.register_model(f"models:/{model_of(diverged)}", "nan-charts")  # registered by hand
    again = register_best("nan", "nan-charts")
    assert registry_state("nan-charts") == (version, [version]) and again.champion == version
    [by_hand] = [v for v, run in source_runs("nan-charts").items() if v != version]
    assert mlflow.MlflowClient().get_model_version("nan-charts", by_hand).tags["seaice.weights_finite"] == "false"


def test_register_command(tracking):
    train_run("cli", 45.0)
    result = CliRunner().invoke(cli, ["register", "--experiment", "cli", "--model-name", "cli-charts"])
    assert result.exit_code == 0, result.output
    assert "is champion" in result.output
    loaded = mlflow.pyfunc.load_model("models:/cli-charts@champion")
    assert loaded.metadata.get_input_schema().inputs[0].shape[1] == len(SCENE_VARIABLES)


def test_a_deleted_run_neither_keeps_nor_blocks_the_champion(tracking):
    kept = train_run("deleted", 50.0)
    deleted = train_run("deleted", 60.0)
    evaluate_run("deleted", deleted, 70.0)  # an evaluation of the deleted run's model stays
    first = register_best("deleted", "deleted-charts")
    assert source_runs("deleted-charts")[first.champion] == deleted
    mlflow.MlflowClient().delete_run(deleted)
    for collected in (False, True):  # deleted, then deleted for good by `mlflow gc`
        if collected:
            gc = subprocess.run([sys.executable, "-m", "mlflow", "gc", "--backend-store-uri", tracking],
                                capture_output=True, text=True)  # fmt: skip
            assert gc.returncode == 0, gc.stderr[-3000:]
        promotion = register_best("deleted", "deleted-charts")
        champion = promotion.champion
        assert source_runs("deleted-charts")[champion] == kept
        assert registry_state("deleted-charts") == (champion, [champion])
        assert f"version {first.version} left out: its run {deleted} was deleted" in promotion.message
