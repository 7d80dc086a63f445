"""register: ranking, reuse of versions, champion only when better, stages, concurrency."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner

from seaice_mlflow.cli import cli
from seaice_mlflow.data.variables import SCENE_VARIABLES
from seaice_mlflow.inference.recipe import Recipe
from seaice_mlflow.models import ModelSpec, build_model
from seaice_mlflow.tracking.pyfunc import log_chart_model
from seaice_mlflow.tracking.registry import RegistryError, register_best

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
    spec = ModelSpec("unet", len(SCENE_VARIABLES), unet_filters=(2, 2))
    with mlflow.start_run() as run:
        mlflow.set_tags({"seaice.entry_point": "train", "seaice.store_digest": "abc123"})
        mlflow.log_metric("best_val_combined", value)
        log_chart_model(build_model(spec), Recipe(spec, SCENE_VARIABLES))
    return run.info.run_id


def registry_state(name: str) -> tuple[str, list[str]]:
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias(name, "champion").version
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        production = [v.version for v in client.search_model_versions(f"name = '{name}'")
                      if v.current_stage == "Production"]
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
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    procs = [subprocess.Popen([sys.executable, "-m", "seaice_mlflow", "register", "--experiment", experiment,
                               "--model-name", "race"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for experiment in ("low", "high")]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err.decode()[-2000:]
    client = mlflow.MlflowClient()
    versions = {v.version: float(client.get_model_version("race", v.version).tags["seaice.metric_value"])
                for v in client.search_model_versions("name = 'race'")}
    best = max(versions, key=versions.get)
    assert versions[best] == 58.0
    assert registry_state("race") == (best, [best])


def test_register_command(tracking):
    train_run("cli", 45.0)
    result = CliRunner().invoke(cli, ["register", "--experiment", "cli", "--model-name", "cli-charts"])
    assert result.exit_code == 0, result.output
    assert "is champion" in result.output
    loaded = mlflow.pyfunc.load_model("models:/cli-charts@champion")
    assert loaded.metadata.get_input_schema().inputs[0].shape[1] == len(SCENE_VARIABLES)
