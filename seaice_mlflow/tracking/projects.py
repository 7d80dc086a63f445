"""Pipelines of MLproject entry points: each step an ``mlflow.projects.run`` nested under one run.

Each step is an MLproject entry point run with ``mlflow.projects.run(..., env_manager="local")``
in the pipeline's experiment and nested under its run in the UI; steps hand each other model
URIs from their runs (the trained ``models:/m-...``, the registered ``models:/NAME@champion``),
never artifact paths. Any task's pipeline (``main``, ``optical_main``) runs its steps this way.

MLflow's local env manager runs a step's command (``python -m entrypoints...``) with whichever
``python`` comes first on PATH; while a step runs, the folder of this process's interpreter (the
venv's ``bin``) is put first, so ``.venv/bin/seaice pipeline`` works without the venv on PATH.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.exceptions import ExecutionException

import seaice_mlflow
from seaice_mlflow.core.errors import SeaIceError
from seaice_mlflow.core.processes import interpreter_first_on_path


def project_root() -> Path:
    """The folder with the MLproject (the source tree this package runs from, else the cwd)."""
    here = Path(seaice_mlflow.__file__).resolve().parents[1]
    return here if (here / "MLproject").is_file() else Path.cwd()


class Pipeline:
    """Runs the steps of one pipeline run in ``experiment_id``, nested under ``parent_run_id``, from
    the MLproject in ``project`` (default: :func:`project_root`)."""

    def __init__(self, experiment_id: str, parent_run_id: str, project: Path | None = None):
        self.experiment_id, self.parent_run_id = experiment_id, parent_run_id
        self.project = project or project_root()
        self.runs: dict[str, str] = {}

    def step(self, entry_point: str, parameters: dict[str, object]) -> mlflow.entities.Run:
        """Run one MLproject entry point to completion with this interpreter; its run, nested
        under the pipeline's."""
        try:
            with interpreter_first_on_path():
                submitted = mlflow.projects.run(
                    str(self.project),
                    entry_point=entry_point,
                    env_manager="local",
                    parameters={k: str(v) for k, v in parameters.items()},
                    experiment_id=self.experiment_id,
                    synchronous=True,
                )
        except ExecutionException as err:
            raise SeaIceError(f"pipeline step {entry_point} failed ({err}); see that run's output above") from err
        mlflow.MlflowClient().set_tag(submitted.run_id, "mlflow.parentRunId", self.parent_run_id)
        self.runs[entry_point] = submitted.run_id
        return mlflow.get_run(submitted.run_id)
