"""Against a real `mlflow server` over HTTP: train, evaluate, register, load by alias and by stage;
and a model served over REST with `seaice serve`."""

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


def test_seaice_serve_works_without_the_venv_on_path(tmp_path, monkeypatch):
    """`mlflow models serve` starts `uvicorn` by name; `.venv/bin/seaice serve` finds this venv's."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("served")
    spec = ModelSpec("unet", len(SCENE_VARIABLES), AUTOICE.outputs(), UNetOptions((2, 2)))
    with mlflow.start_run():
        model_uri = log_chart_model(build_model(spec), Recipe(spec, SCENE_VARIABLES)).model_uri
    port = free_port()
    command = [str(Path(sys.executable).parent / "seaice"), "serve", "--model-uri", model_uri, "--port", str(port)]
    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PATH": "/usr/bin:/bin"},
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
        assert np.asarray(predictions["SIC"]).shape == (1, 16, 24)
    finally:
        stop_group(proc)
