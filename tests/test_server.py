"""Against a real `mlflow server` over HTTP: train, evaluate, register, load by alias and by stage."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
from click.testing import CliRunner

from seaice_mlflow.cli import cli
from seaice_mlflow.data.preprocess import preprocess
from seaice_mlflow.data.variables import SCENE_VARIABLES

TINY = ["--epochs", "1", "--batches-per-epoch", "2", "--batch-size", "4", "--patch-size", "64",
        "--unet-filters", "8,8,16,16", "--workers", "0", "--val-tile", "64", "--device", "cpu"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """`mlflow server` on 127.0.0.1 with a sqlite backend in tmp_path, stopped by its PID."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
               "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
        pytest.fail("mlflow server did not become healthy in 120 s")
    yield url
    os.killpg(proc.pid, signal.SIGTERM)  # the server, its uvicorn worker and job runner
    proc.wait(timeout=30)


def test_pipeline_steps_over_http(server, ready_dir, test_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "over-http")
    mlflow.set_tracking_uri(server)
    store = tmp_path / "store"
    preprocess(ready_dir, store, downsample=1, variables=SCENE_VARIABLES, val_scenes=1, val_list=None, workers=1,
               overwrite=False, seed=0)
    runner = CliRunner()
    trained = runner.invoke(cli, ["train", "--store", str(store), "--out", str(tmp_path / "ckpt"), *TINY])
    assert trained.exit_code == 0, trained.output
    [train_run] = mlflow.search_runs(experiment_names=["over-http"], output_format="list")
    model_uri = train_run.data.tags["seaice.model_uri"]
    evaluated = runner.invoke(cli, ["evaluate", "--model-uri", model_uri, "--data-dir", str(test_dir),
                                    "--device", "cpu"])
    assert evaluated.exit_code == 0, evaluated.output
    registered = runner.invoke(cli, ["register", "--experiment", "over-http", "--model-name", "http-charts"])
    assert registered.exit_code == 0, registered.output
    x = np.zeros((1, len(SCENE_VARIABLES) + 5, 40, 48), np.float32)
    for uri in ("models:/http-charts@champion", "models:/http-charts/Production"):
        out = mlflow.pyfunc.load_model(uri, model_config={"device": "cpu"}).predict(x)
        assert out["SIC"].shape == (1, 40, 48), uri
