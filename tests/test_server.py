"""Against a real `mlflow server` over HTTP: train, evaluate, register, load by alias and by stage;
and the champion served over REST (`mlflow models serve`, `seaice serve`)."""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
from click.testing import CliRunner

from seaice_mlflow.cli import cli
from seaice_mlflow.models import ModelSpec, UNetOptions, build_model
from seaice_mlflow.tasks.autoice.charts import AUTOICE
from seaice_mlflow.tasks.autoice.files.variables import SCENE_VARIABLES
from seaice_mlflow.tasks.autoice.pyfunc import log_chart_model
from seaice_mlflow.tasks.autoice.recipe import Recipe
from tests.mlflow_server import TrackingServer, free_port, stop_group, wait_until_healthy
from tests.tiny_model import TINY_TRAIN, tiny_store

TINY = ["--epochs", "1", *TINY_TRAIN]


@pytest.fixture
def server(tmp_path):
    """`mlflow server` on 127.0.0.1 with a sqlite backend in tmp_path, stopped by its PID."""
    tracking = TrackingServer(tmp_path)
    yield tracking.start()
    tracking.stop()


def test_pipeline_steps_over_http(server, ready_dir, test_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "over-http")
    mlflow.set_tracking_uri(server)
    store = tmp_path / "store"
    tiny_store(ready_dir, store)
    runner = CliRunner()
    trained = runner.invoke(cli, ["train", "--store", str(store), "--out", str(tmp_path / "ckpt"), *TINY])
    assert trained.exit_code == 0, trained.output
    [train_run] = mlflow.search_runs(experiment_names=["over-http"], output_format="list")
    model_uri = train_run.data.tags["seaice.model_uri"]
    evaluated = runner.invoke(
        cli, ["evaluate", "--model-uri", model_uri, "--data-dir", str(test_dir), "--device", "cpu"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    registered = runner.invoke(cli, ["register", "--experiment", "over-http", "--model-name", "http-charts"])
    assert registered.exit_code == 0, registered.output
    x = np.zeros((1, len(SCENE_VARIABLES) + 5, 40, 48), np.float32)
    for uri in ("models:/http-charts@champion", "models:/http-charts/Production"):
        out = mlflow.pyfunc.load_model(uri, model_config={"device": "cpu"}).predict(x)
        assert out["SIC"].shape == (1, 40, 48), uri


@pytest.mark.parametrize("how", ["mlflow", "seaice"])
def test_the_champion_answers_rest_requests(how, tmp_path, monkeypatch):
    """`mlflow models serve -m models:/NAME@champion --env-manager local` (the venv's mlflow on
    PATH), and `.venv/bin/seaice serve` without the venv on PATH (MLflow starts `uvicorn` by name)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("served")
    spec = ModelSpec("unet", len(SCENE_VARIABLES), AUTOICE.outputs(), UNetOptions((2, 2)))
    with mlflow.start_run():
        model_uri = log_chart_model(build_model(spec), Recipe(spec, SCENE_VARIABLES)).model_uri
    version = mlflow.register_model(model_uri, "served-charts").version
    mlflow.MlflowClient().set_registered_model_alias("served-charts", "champion", version)
    port, bin_dir = free_port(), Path(sys.executable).parent
    if how == "mlflow":
        command = [str(bin_dir / "mlflow"), "models", "serve", "-m", "models:/served-charts@champion",
                   "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
        path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    else:
        command = [str(bin_dir / "seaice"), "serve", "--model-uri", "models:/served-charts@champion", "--port",
                   str(port)]  # fmt: skip
        path = "/usr/bin:/bin"
    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PATH": path},
        start_new_session=True,
    )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/ping", proc)
        body = json.dumps({"inputs": np.zeros((1, len(SCENE_VARIABLES), 16, 24), np.float32).tolist()}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = json.loads(response.read())["predictions"]
        assert {chart: np.asarray(values).shape for chart, values in predictions.items()} == {
            "SIC": (1, 16, 24), "SOD": (1, 16, 24), "FLOE": (1, 16, 24)
        }  # fmt: skip
    finally:
        stop_group(proc)
