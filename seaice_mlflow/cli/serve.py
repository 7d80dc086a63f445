"""``seaice serve``: a chart model over REST (``mlflow models serve``), with this interpreter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import click

from seaice_mlflow.cli.evaluate import MODEL_URI_FORMS
from seaice_mlflow.cli.options import options_from
from seaice_mlflow.core.defaults import ServeDefaults
from seaice_mlflow.core.errors import Interrupted


@click.command("serve")
@click.option("--model-uri", required=True, metavar="URI", help=MODEL_URI_FORMS)
@options_from(ServeDefaults)
def serve_command(model_uri: str, host: str, port: int, workers: int) -> None:
    """Serve a chart model: POST {"inputs": (N, C, H, W) float32} to /invocations, get class maps.

    Runs ``mlflow models serve --env-manager local`` with this interpreter's folder first on
    PATH (MLflow starts ``uvicorn`` by name), so it works without the venv activated. A
    registry URI (``models:/NAME@champion``) is pinned to the version it names now.
    """
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
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "--model-uri",
        pinned,
        "--env-manager",
        "local",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    with subprocess.Popen(command, env={**os.environ, "PATH": interpreter_path()}) as server:
        try:
            code = server.wait()
        except Interrupted:  # stop the server and its workers, then say so
            server.send_signal(signal.SIGTERM)
            server.wait()
            raise
    if code:
        raise SystemExit(code)
