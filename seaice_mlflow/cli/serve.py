"""``seaice serve``: a chart model over REST (MLflow's scoring server, as ``mlflow models serve`` runs it),
with this interpreter and one-line error replies (:mod:`seaice_mlflow.tracking.serving`)."""

from __future__ import annotations

import signal
import subprocess
import sys

import click

from seaice_mlflow.cli.evaluate import MODEL_URI_FORMS
from seaice_mlflow.cli.options import options_from
from seaice_mlflow.core.defaults import ServeDefaults
from seaice_mlflow.core.errors import Interrupted, ParameterError, first_line


@click.command("serve")
@click.option("--model-uri", required=True, metavar="URI", help=MODEL_URI_FORMS)
@options_from(ServeDefaults)
def serve_command(model_uri: str, host: str, port: int, workers: int) -> None:
    """Serve a chart model: POST {"inputs": (N, C, H, W) float32} to /invocations, get class maps.

    Runs MLflow's scoring server (what ``mlflow models serve --env-manager local`` runs) under this
    interpreter's uvicorn, so it works without the venv activated, and answers a bad request (a
    wrong channel count, NaN values) with one line instead of a dump of the request. A registry
    URI (``models:/NAME@champion``) is pinned to the version it names now. C is the model's
    input count: its signature's inputs, (-1, C, -1, -1).
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc.scoring_server import get_cmd

    from seaice_mlflow.core.processes import interpreter_path
    from seaice_mlflow.tracking.model_refs import registry_version
    from seaice_mlflow.tracking.runs import resolve_tracking_uri

    resolve_tracking_uri()
    registered = registry_version(model_uri)
    pinned = f"models:/{registered[0]}/{registered[1]}" if registered else model_uri
    click.echo(
        f"serving {pinned}"
        + (f" ({model_uri})" if pinned != model_uri else "")
        + f" at http://{host}:{port}/invocations"
    )
    try:
        folder = mlflow.artifacts.download_artifacts(pinned)
    except MlflowException as err:
        raise ParameterError("model_uri", f"{model_uri}: {first_line(err)}") from None
    _, env = get_cmd(folder, port, host, None, workers)  # MLflow's environment: the model's folder, the timeout
    command = [sys.executable, "-m", "uvicorn", "--host", host, "--port", str(port), "--workers", str(workers),
               "--factory", "seaice_mlflow.tracking.serving:scoring_app"]  # fmt: skip
    with subprocess.Popen(command, env={**env, "PATH": interpreter_path()}) as server:
        try:
            code = server.wait()
        except Interrupted:  # stop the server and its workers, then say so
            server.send_signal(signal.SIGTERM)
            server.wait()
            raise
    if code:
        raise SystemExit(code)
