"""MLflow runs: an explicit absolute tracking URI, attaching to `mlflow run`, params logged once.

A command checks the tracking server before any work (an HTTP server that does not answer
fails in seconds, naming the URI), makes a relative sqlite URI absolute, and ends its run
KILLED when it is interrupted (SIGTERM, Ctrl-C).

Every command has one step function (``tracking.preprocessing.preprocess``, ``tracking.training.train``,
``tracking.evaluation.evaluate``, ``tracking.registration.register``, ``tracking.prediction.predict``,
``pipeline.main``) that opens its run with :func:`step_run`; the click command parses options,
calls it and prints.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from seaice_mlflow.core.defaults import TRACKING
from seaice_mlflow.core.errors import Interrupted, SeaIceError, first_line

DEFAULT_EXPERIMENT = "seaice"
#: Tags naming the model a run trained or scored (``models:/m-...``; comma-separated for an
#: ensemble) and its logged model id(s); ``seaice register`` reads them.
MODEL_URI_TAG, MODEL_ID_TAG = "seaice.model_uri", "seaice.model_id"
#: Tag of an evaluate run that scored a model on scenes it was trained or validated on ("true"/"false"):
#: the registry does not rank models by such scores.
SCORED_ON_TRAINING_TAG = "seaice.scored_on_training_scenes"
#: Artifact key of a logged model's state dict (the registry checks its weights are finite).
WEIGHTS_ARTIFACT = "weights"
SQLITE = "sqlite:///"
#: MLflow's HTTP settings, by environment variable (read by MLflow at every request).
HTTP_SETTINGS = {
    "retries": "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "timeout": "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "backoff": "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
}


class TrackingUnavailable(SeaIceError):
    """The tracking server does not answer (or refuses); the message names the URI."""


def public_uri(uri: str) -> str:
    """A tracking URI without user name or password (they must not end up in messages or files)."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        return urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))
    return uri


def is_http(uri: str) -> bool:
    return urlsplit(uri).scheme in ("http", "https")


@contextmanager
def http_patience(retries: int, timeout: int, backoff: int = 1) -> Iterator[None]:
    """MLflow's HTTP retries, timeout (s) and backoff factor for the calls inside; the previous
    settings (the user's or MLflow's defaults) come back afterwards."""
    saved = {name: os.environ.get(name) for name in HTTP_SETTINGS.values()}
    os.environ.update(
        {
            HTTP_SETTINGS["retries"]: str(retries),
            HTTP_SETTINGS["timeout"]: str(timeout),
            HTTP_SETTINGS["backoff"]: str(backoff),
        }
    )
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def connection_problem(err: BaseException) -> str:
    """The short reason inside MLflow's long message for a failed request ("Connection refused")."""
    text = str(err)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    return errno.group(1).strip() if errno else first_line(err, 160)


def check_tracking_server(uri: str) -> None:
    """An HTTP tracking server must answer within seconds; other stores are local."""
    if not is_http(uri):
        return
    try:
        with http_patience(retries=0, timeout=TRACKING.check_timeout_s):
            mlflow.MlflowClient(uri).search_experiments(max_results=1)
    except MlflowException as err:
        raise TrackingUnavailable(
            f"MLFLOW_TRACKING_URI {public_uri(uri)}: the tracking server does not answer "
            f"({connection_problem(err)}); start it, or set MLFLOW_TRACKING_URI to a running "
            "server or an absolute sqlite:////path/mlflow.db"
        ) from None


def absolute_sqlite(uri: str) -> str:
    """A ``sqlite:///relative.db`` URI made absolute against the working directory, with a note.

    Under `mlflow run` (``MLFLOW_RUN_ID`` set) a step runs in the project folder, so a relative
    database there is another one than where `mlflow run` created the run: refused when the
    run is not in it.
    """
    if not uri.startswith(SQLITE) or uri.startswith(SQLITE + "/") or uri in (SQLITE, "sqlite://"):
        return uri
    absolute = f"{SQLITE}{Path.cwd().resolve() / uri.removeprefix(SQLITE)}"
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if run_id and not run_exists(absolute, run_id):
        raise TrackingUnavailable(
            f"MLFLOW_TRACKING_URI {uri} is relative, and run {run_id} of `mlflow run` is not in "
            f"{absolute} (this step runs in {Path.cwd()}); set MLFLOW_TRACKING_URI absolute, "
            "e.g. sqlite:////abs/path/mlflow.db, and run again"
        )
    print(
        f"note: MLFLOW_TRACKING_URI {uri} is relative; using {absolute} (set it absolute to silence this)",
        file=sys.stderr,
    )
    return absolute


def run_exists(uri: str, run_id: str) -> bool:
    try:
        mlflow.MlflowClient(uri).get_run(run_id)
    except MlflowException:
        return False
    return True


def resolve_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else an absolute sqlite database in the working directory.

    The URI is exported so that child processes (``mlflow run`` steps, loader workers) use the
    same store; MLflow's own default would silently switch to a file store if ``./mlruns``
    exists (spec mlflow.md section 1).
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"{SQLITE}{Path.cwd().resolve() / 'mlflow.db'}"
    uri = absolute_sqlite(uri)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    check_tracking_server(uri)
    mlflow.set_tracking_uri(uri)
    return uri


@contextmanager
def start_run(
    run_name: str, entry_point: str, experiment: str | None = None, system_metrics: bool = False
) -> Iterator[mlflow.ActiveRun]:
    """The run of a command: the one `mlflow run` created (``MLFLOW_RUN_ID``), else a new run in
    ``experiment`` (or ``MLFLOW_EXPERIMENT_NAME``, or "seaice").

    A step started inside another step's run (a tune's trials) is that run's child, in its experiment.

    The run ends KILLED when the command is interrupted, FAILED on an error (a server that went
    away is not waited for again), FINISHED otherwise."""
    resolve_tracking_uri()
    nested = mlflow.active_run() is not None
    attached = not nested and "MLFLOW_RUN_ID" in os.environ
    if not nested and not attached:
        name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
        if name or not _experiment_exists(os.environ.get("MLFLOW_EXPERIMENT_ID")):
            mlflow.set_experiment(name or DEFAULT_EXPERIMENT)
    with mlflow.start_run(
        run_name=None if attached else run_name, nested=nested, log_system_metrics=system_metrics
    ) as run:
        mlflow.set_tag("seaice.entry_point", entry_point)
        try:
            yield run
        except (Interrupted, KeyboardInterrupt):
            end_run_quickly("KILLED")
            raise
        except TrackingUnavailable:
            end_run_quickly("FAILED")
            raise


@contextmanager
def step_run(
    entry_point: str, params: Mapping[str, object], experiment: str | None = None, system_metrics: bool = False
) -> Iterator[mlflow.ActiveRun]:
    """The run of one step (command), as every step opens it: :func:`start_run` named and tagged
    after its entry point, with the step's params logged once (:func:`log_params_once`)."""
    with start_run(entry_point, entry_point, experiment, system_metrics) as run:
        log_params_once(params)
        yield run


def end_run_quickly(status: str) -> None:
    """End the active run with ``status``, trying the server once (MLflow forgets the run either way)."""
    try:
        with http_patience(retries=0, timeout=TRACKING.check_timeout_s):
            mlflow.end_run(status)
    except MlflowException:
        pass


def _experiment_exists(experiment_id: str | None) -> bool:
    if not experiment_id:
        return False
    try:
        return mlflow.MlflowClient().get_experiment(experiment_id).lifecycle_stage == "active"
    except mlflow.exceptions.MlflowException:
        return False


def format_param(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def log_params_once(params: Mapping[str, object]) -> None:
    """Log the params the active run does not have yet.

    `mlflow run` logs the entry point's declared parameters itself, as the strings the user gave
    (``lr='1e-4'``); logging them again with another spelling would fail, so those keys are left.
    """
    run = mlflow.active_run()
    existing = mlflow.get_run(run.info.run_id).data.params if run else {}
    new = {k: format_param(v) for k, v in params.items() if k not in existing}
    if new:
        mlflow.log_params(new)


def log_scene_dataset(scenes: list[dict], source: str, name: str, context: str) -> None:
    """The scenes a run used, as an MLflow dataset input (shown in the UI's Datasets column)."""
    columns = ["scene_id", "kind", "split", "file", "sha256", "lines", "samples"]
    rows = [
        {
            "scene_id": s["scene_id"],
            "kind": s["kind"],
            "split": s.get("split", ""),
            "file": s.get("source", {}).get("file", ""),
            "sha256": s.get("source", {}).get("sha256", ""),
            "lines": s["full_shape"][0],
            "samples": s["full_shape"][1],
        }
        for s in scenes
    ]
    with warnings.catch_warnings():  # MLflow's advice on integer columns and path sources does not apply
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(pd.DataFrame(rows, columns=columns), source=source, name=name)
        mlflow.log_input(dataset, context=context)
