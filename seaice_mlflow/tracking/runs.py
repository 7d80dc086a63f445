"""MLflow runs: an explicit absolute tracking URI, attaching to `mlflow run`, params logged once."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pandas as pd

DEFAULT_EXPERIMENT = "seaice"
#: Tags naming the model a run trained or scored (``models:/m-...``; comma-separated for an
#: ensemble) and its logged model id(s); ``seaice register`` reads them.
MODEL_URI_TAG, MODEL_ID_TAG = "seaice.model_uri", "seaice.model_id"


def resolve_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else an absolute sqlite database in the working directory.

    The URI is exported so that child processes (``mlflow run`` steps, loader workers) use the
    same store; MLflow's own default would silently switch to a file store if ``./mlruns``
    exists (spec mlflow.md section 1).
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        uri = f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"
        os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    return uri


@contextmanager
def start_run(run_name: str, entry_point: str, experiment: str | None = None,
              system_metrics: bool = False) -> Iterator[mlflow.ActiveRun]:
    """The run of a command: the one `mlflow run` created (``MLFLOW_RUN_ID``), else a new run in
    ``experiment`` (or ``MLFLOW_EXPERIMENT_NAME``, or "seaice")."""
    resolve_tracking_uri()
    attached = "MLFLOW_RUN_ID" in os.environ
    if not attached:
        name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
        if name or not _experiment_exists(os.environ.get("MLFLOW_EXPERIMENT_ID")):
            mlflow.set_experiment(name or DEFAULT_EXPERIMENT)
    with mlflow.start_run(run_name=None if attached else run_name, log_system_metrics=system_metrics) as run:
        mlflow.set_tag("seaice.entry_point", entry_point)
        yield run


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
    rows = [{"scene_id": s["scene_id"], "kind": s["kind"], "split": s.get("split", ""),
             "file": s.get("source", {}).get("file", ""), "sha256": s.get("source", {}).get("sha256", ""),
             "lines": s["full_shape"][0], "samples": s["full_shape"][1]} for s in scenes]
    with warnings.catch_warnings():  # MLflow's advice on integer columns and path sources does not apply
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(pd.DataFrame(rows, columns=columns), source=source, name=name)
        mlflow.log_input(dataset, context=context)
