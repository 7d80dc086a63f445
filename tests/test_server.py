"""Against a real `mlflow server` over HTTP: train, evaluate, register, load by alias and by stage;
and the champion served over REST (`mlflow models serve`, `seaice serve`)."""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
from click.testing import CliRunner

from seaice_mlflow.cli import cli
from seaice_mlflow.models import ModelSpec, UNetOptions, build_model
from seaice_mlflow.tasks.autoice.charts import AUTOICE
from seaice_mlflow.tasks.autoice.files.variables import ENCODING_VARIABLES, SCENE_VARIABLES
from seaice_mlflow.tasks.autoice.pyfunc import log_chart_model
from seaice_mlflow.tasks.autoice.recipe import Recipe
from tests.mlflow_server import TrackingServer, free_port, stop_group, wait_until_healthy
from tests.tiny_model import ROOT, TINY_TRAIN, tiny_store

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
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "unset")  # restored after the test
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
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
    assert "\r" not in evaluated.output  # no bar redraws (MLflow's artifact download) when not on a terminal
    registered = runner.invoke(cli, ["register", "--experiment", "over-http", "--model-name", "http-charts"])
    assert registered.exit_code == 0, registered.output
    x = np.zeros((1, len(SCENE_VARIABLES) + 5, 40, 48), np.float32)
    for uri in ("models:/http-charts@champion", "models:/http-charts/Production"):
        out = mlflow.pyfunc.load_model(uri, model_config={"device": "cpu"}).predict(x)
        assert out["SIC"].shape == (1, 40, 48), uri


def readme_serving_commands(port: int) -> str:
    """The README's serving commands (the bash block after "Over REST:") as written, on ``port``."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("Over REST:") :]
    start = section.index("```bash\n") + len("```bash\n")
    return section[start : section.index("\n```", start)].replace("5001", str(port))


def post(port: int, inputs: np.ndarray) -> tuple[int, bytes]:
    """POST ``{"inputs": ...}`` to the served model: (HTTP status, reply body)."""
    body = json.dumps({"inputs": inputs.tolist()}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.mark.parametrize("how", ["mlflow", "readme"])
def test_the_champion_answers_rest_requests(how, tmp_path, monkeypatch):
    """`mlflow models serve -m models:/NAME@champion --env-manager local` (the venv's mlflow on
    PATH), and the README's commands as written (a free port for 5001): `seaice serve` in the
    background, the channel count read from the model's signature, `curl -d @request.json`; then
    `seaice serve` answers a wrong channel count and NaN/inf values with HTTP 400 in one line."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("served")
    variables = SCENE_VARIABLES + ENCODING_VARIABLES  # the demo model's 29 inputs
    spec = ModelSpec("unet", len(variables), AUTOICE.outputs(), UNetOptions((2, 2)))
    with mlflow.start_run():
        model_uri = log_chart_model(build_model(spec), Recipe(spec, variables)).model_uri
    version = mlflow.register_model(model_uri, "seaice-charts").version
    mlflow.MlflowClient().set_registered_model_alias("seaice-charts", "champion", version)
    port, bin_dir = free_port(), Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin"}  # the venv activated, curl
    if how == "mlflow":
        command = [str(bin_dir / "mlflow"), "models", "serve", "-m", "models:/seaice-charts@champion",
                   "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                start_new_session=True)  # fmt: skip
    else:
        # files, not pipes: the background server keeps its output open after the script has ended
        with open(tmp_path / "stdout.txt", "w") as out, open(tmp_path / "stderr.txt", "w") as err:
            proc = subprocess.Popen(["bash", "-c", readme_serving_commands(port)], cwd=tmp_path, stdout=out,
                                    stderr=err, env=env, start_new_session=True)  # fmt: skip
    try:
        if how == "mlflow":
            wait_until_healthy(f"http://127.0.0.1:{port}/ping", proc)
            status, reply = post(port, np.zeros((1, len(variables), 16, 24), np.float32))
            assert status == 200, reply
            shape = (1, 16, 24)
        else:
            assert proc.wait(timeout=300) == 0, (tmp_path / "stderr.txt").read_text()[-2000:]  # bash ends after curl
            reply, shape = (tmp_path / "stdout.txt").read_text().splitlines()[-1], (1, 64, 64)
        predictions = json.loads(reply)["predictions"]
        assert {chart: np.asarray(values).shape for chart, values in predictions.items()} == {
            "SIC": shape, "SOD": shape, "FLOE": shape
        }  # fmt: skip
        if how == "mlflow":
            return
        status, reply = post(port, np.zeros((1, 24, 16, 16), np.float32))  # the README's old request
        assert status == 400 and b"\n" not in reply and len(reply) < 300, reply
        assert json.loads(reply) == {"error_code": "INVALID_PARAMETER_VALUE", "error_class":
                                     "SCHEMA_ENFORCEMENT_FAILED", "message": "Shape of input (1, 24, 16, 16) does "
                                     "not match expected shape (-1, 29, -1, -1)."}  # fmt: skip
        bad = np.zeros((1, len(variables), 64, 64), np.float32)
        bad[0, 1, 0, 0], bad[0, variables.index("btemp_36_5h"), 30, 40] = np.inf, np.nan
        status, reply = post(port, bad)
        assert status == 400 and b"\n" not in reply and len(reply) < 400, reply
        assert json.loads(reply)["message"].startswith(
            f"input channel(s) 1 (nersc_sar_secondary: 1 values), {variables.index('btemp_36_5h')} (btemp_36_5h: 1 "
            "values) hold values that are not finite (NaN or inf)"
        )
    finally:
        stop_group(proc)
