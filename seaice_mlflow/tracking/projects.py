"""Pipelines of MLproject entry points: each step an ``mlflow.projects.run`` nested under one run.

Each step is an MLproject entry point run with ``mlflow.projects.run(..., env_manager="local")``
in the pipeline's experiment and nested under its run in the UI; steps hand each other model
URIs from their runs (the trained ``models:/m-...``, the registered ``models:/NAME@champion``),
never artifact paths. Any task's pipeline (``main``, ``optical_main``) runs its steps this way.

The last step charts with the registry's champion, which is the model trained now only when it
won: :class:`ModelsUsed` says which model each step used (registry URIs pinned to the version the
step loaded), tags the pipeline's run with it and says when the new model did not become champion.

MLflow's local env manager runs a step's command (``python -m entrypoints...``) with whichever
``python`` comes first on PATH; while a step runs, the folder of this process's interpreter (the
venv's ``bin``) is put first, so ``.venv/bin/seaice pipeline`` works without the venv on PATH.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import ExecutionException

import seaice_mlflow
from seaice_mlflow.core.errors import SeaIceError
from seaice_mlflow.core.processes import interpreter_first_on_path
from seaice_mlflow.tracking.model_refs import OUTCOME_TAG, REGISTERED_URI_TAG, REGISTERED_VERSION_TAG
from seaice_mlflow.tracking.runs import MODEL_ID_TAG, MODEL_URI_TAG

#: Tags of a pipeline's run: the model each step used (``seaice.model_used.<step>``), and whether the
#: model it trained is the champion its last step used ("true"/"false").
MODEL_USED_TAG, TRAINED_IS_CHAMPION_TAG = "seaice.model_used", "seaice.trained_is_champion"


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
        self.finished: dict[str, mlflow.entities.Run] = {}  # step -> its run, as it ended

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
        self.finished[entry_point] = mlflow.get_run(submitted.run_id)
        return self.finished[entry_point]

    def models_used(self, train: str, register: str, predict: str) -> ModelsUsed:
        """Which model each step used, once the ``train``, ``register`` and ``predict`` steps have run."""
        runs = self.finished
        trained = runs[train].data.tags[MODEL_URI_TAG]
        used = {step: model_used(run) for step, run in runs.items() if step != train}
        used = {train: trained, **used, register: runs[register].data.tags.get(REGISTERED_URI_TAG, "")}
        champion = runs[predict].data.tags.get(MODEL_ID_TAG)
        return ModelsUsed({s: u for s, u in used.items() if u}, trained, used[predict],
                          champion == trained.removeprefix("models:/"),
                          runs[register].data.tags.get(OUTCOME_TAG, ""))  # fmt: skip


def model_used(run: mlflow.entities.Run) -> str:
    """The model(s) a step's run loaded: ``models:/NAME/<version> (models:/m-...)`` when given by registry
    name, alias or stage, else ``models:/m-...``; empty for a step that loads none."""
    tags = run.data.tags
    uris, names = tags.get(MODEL_URI_TAG, ""), tags.get(REGISTERED_VERSION_TAG, "")
    if not uris or not names or "," in uris:
        return uris
    return f"models:/{names} ({uris})"


@dataclass(frozen=True)
class ModelsUsed:
    """The model each step of a pipeline used, and whether the model it trained is the champion its
    last step charted with."""

    steps: dict[str, str]  # step -> model URI, in step order
    trained: str  # models:/m-... the pipeline trained
    champion: str  # what the last step used: the registry's champion, pinned
    trained_is_champion: bool
    register_outcome: str  # the register step's line

    def tags(self) -> dict[str, str]:
        return {
            **{f"{MODEL_USED_TAG}.{step}": uri for step, uri in self.steps.items()},
            TRAINED_IS_CHAMPION_TAG: str(self.trained_is_champion).lower(),
        }

    def lines(self) -> list[str]:
        """One line per step, and a note when the new model did not become champion."""
        lines = [f"{step}: {uri}" for step, uri in self.steps.items()]
        if not self.trained_is_champion:
            lines.append(f"note: the model trained now, {self.trained}, did not become champion "
                         f"({self.register_outcome}); the champion {self.champion} made the predictions")  # fmt: skip
        return lines
