"""An optical training run in MLflow ("optical_train"): params, per-epoch metrics, checkpoints, recipe.

Per epoch: ``train_loss``, ``lr``, ``patches_per_s`` and, with validation photos, ``val_ice_miou``
(the score) and ``val_combined`` (the same for this one-head task); then ``best_val_combined``,
``best_epoch``, ``epochs_trained``, the best checkpoint under ``checkpoints/``, the model's
``recipe.json`` (network spec, class table, input scaling) and the best checkpoint as a pyfunc
model (:mod:`~seaice_mlflow.tasks.optical.pyfunc`), its ``models:/m-...`` URI in the tag
``seaice.model_uri``. A floe detector (``--model maskrcnn``, level ``instance``) trains as
:class:`~seaice_mlflow.tasks.optical.floes.training.FloeTraining` instead: ``train_loss_<loss>``
per Mask R-CNN loss, ``val_floe_f1`` (the score), ``val_floe_precision``, ``val_floe_recall``,
``val_floe_matched_iou``, and a floe pyfunc model (:mod:`~seaice_mlflow.tasks.optical.floes.pyfunc`),
tagged ``seaice.product`` ``floes``. A run that is interrupted ends
KILLED (:func:`~seaice_mlflow.tracking.runs.step_run`); ``--out`` keeps ``last.pt`` and ``best.pt``. A
run a SIGKILL left RUNNING is marked KILLED by the next training into the same ``--out``
(:func:`~seaice_mlflow.tracking.runs.take_over`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow

from seaice_mlflow.core.checkpoint import BEST, load_checkpoint
from seaice_mlflow.core.defaults import applicable
from seaice_mlflow.core.io import check_writable
from seaice_mlflow.core.trainer import EpochReport
from seaice_mlflow.models import get_architecture
from seaice_mlflow.tasks.optical.config import OpticalTrainDefaults
from seaice_mlflow.tasks.optical.floes.pyfunc import log_floe_model
from seaice_mlflow.tasks.optical.floes.training import FloeTraining
from seaice_mlflow.tasks.optical.pyfunc import log_photo_model
from seaice_mlflow.tasks.optical.training import PhotoTraining
from seaice_mlflow.tracking.runs import MODEL_URI_TAG, run_name, step_run, take_over


@dataclass
class OpticalTrainRun:
    run_id: str
    model_uri: str  # models:/m-... of the logged pyfunc model
    best_val_combined: float | None
    epochs: int
    checkpoint: Path


def train(
    data_dir: str | Path, options: OpticalTrainDefaults, on_epoch: Callable[[EpochReport], None] | None = None
) -> OpticalTrainRun:
    """Train as ``options`` say on the photos of ``data_dir`` in the active (or a new) run."""
    out = check_writable(options.out, "out")
    params = {"data_dir": str(Path(data_dir).resolve()), **applicable(options), "out": str(out)}
    name = run_name("optical_train", options.model, Path(data_dir).name)
    with step_run("optical_train", params, system_metrics=True, name=name, family="optical") as run:
        take_over("optical_train", {"out": params["out"]})  # a killed training into the same folder
        floes = get_architecture(options.model).level == "instance"
        training = (FloeTraining if floes else PhotoTraining).build(data_dir, options)
        mlflow.set_tags({"seaice.task": "optical", "seaice.model": options.model, "seaice.data_dir": params["data_dir"],
                         "seaice.layout": training.folder.layout})  # fmt: skip
        if floes:
            mlflow.set_tag("seaice.product", "floes")
        mlflow.log_dict(training.recipe.as_dict(), "recipe.json")

        def epoch_done(report: EpochReport) -> None:
            mlflow.log_metrics(report.metrics, step=report.epoch)
            if on_epoch is not None:
                on_epoch(report)

        state = training.trainer.fit(epoch_done)
        validated = bool(training.validation_photos())
        mlflow.log_metrics({"best_epoch": state.best_epoch, "epochs_trained": state.epoch,
                            **({"best_val_combined": state.best} if validated else {})})  # fmt: skip
        mlflow.log_artifact(str(out / BEST), "checkpoints")
        training.network.load_state_dict(load_checkpoint(out / BEST)["model"])
        info = (log_floe_model if floes else log_photo_model)(training.network, training.recipe)
        mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
        return OpticalTrainRun(run.info.run_id, info.model_uri, state.best if validated else None, state.epoch,
                               out / BEST)  # fmt: skip
