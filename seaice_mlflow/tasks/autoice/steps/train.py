"""A training run in MLflow: params, tags, dataset, per-epoch metrics, checkpoints, plots, the model.

At the end, the best checkpoint's classified heads are calibrated on the validation scenes
(temperature scaling, :meth:`~seaice_mlflow.tasks.autoice.training.ChartTraining.calibrate`): the
metrics ``temperature_<chart>``, ``calibration_pixels_<chart>`` and ``best_val_<chart>_ece`` /
``best_val_<chart>_ece_uncalibrated`` (percent, on those pixels) are logged and the temperatures
go into the logged model's recipe. Without validation scenes every temperature stays 1, and so does
that of a chart whose validation pixels hold one class only (the tag ``seaice.calibration`` and a
warning say so).

A resumed run is tagged with the run it continues (``seaice.resumed_from``, a run id), and that
run, if it was left RUNNING by a kill, is marked KILLED. An interrupted training (SIGTERM,
Ctrl-C) ends its run KILLED and names the ``--resume`` command; per-epoch logging survives the
tracking server going away (:mod:`seaice_mlflow.tracking.outage`).
"""

from __future__ import annotations

import gc
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import mlflow
import pandas as pd
import torch
from mlflow.exceptions import MlflowException

import seaice_mlflow
from seaice_mlflow.core.calibration import HeadCalibration
from seaice_mlflow.core.checkpoint import BEST, LAST, RUN_ID, load_checkpoint, resolve_resume
from seaice_mlflow.core.defaults import applicable
from seaice_mlflow.core.distributed import setup, teardown
from seaice_mlflow.core.errors import Interrupted
from seaice_mlflow.core.io import check_writable
from seaice_mlflow.core.tiling import Window
from seaice_mlflow.core.trainer import EpochReport, TrainingState
from seaice_mlflow.tasks.autoice import plots
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES
from seaice_mlflow.tasks.autoice.pyfunc import log_chart_model
from seaice_mlflow.tasks.autoice.recipe import Recipe
from seaice_mlflow.tasks.autoice.train_config import TrainConfig
from seaice_mlflow.tasks.autoice.training import ChartTraining
from seaice_mlflow.tracking.outage import EpochLog, training_patience
from seaice_mlflow.tracking.runs import (
    MODEL_URI_TAG,
    TrackingUnavailable,
    connection_problem,
    end_abandoned,
    log_scene_dataset,
    resolve_tracking_uri,
    run_name,
    stderr_line,
    step_run,
    take_over,
)


@dataclass
class TrainResult:
    run_id: str | None
    model_uri: str | None  # models:/m-... of the logged model (rank 0 only)
    best_val_combined: float | None
    epochs: int


def git_commit() -> str | None:
    """The commit of the source tree this code runs from, when it is a git checkout."""
    root = Path(seaice_mlflow.__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def train(
    config: TrainConfig,
    on_epoch: Callable[[EpochReport], None] | None = None,
    echo: Callable[[str], None] = stderr_line,
) -> TrainResult:
    """Train as configured; rank 0 tracks everything in the active (or a new) MLflow run.

    ``on_epoch`` sees each epoch's report (the command prints a line); ``echo`` gets warnings
    (the tracking server away and back).
    """
    out = check_writable(config.out, "out")  # before minutes of work
    resolve_tracking_uri()  # a server that does not answer fails now, not after the first epoch
    dist = setup(torch.device("cuda" if config.device != "cpu" and torch.cuda.is_available() else "cpu"))
    try:
        training = ChartTraining.build(config, dist)
        trainer = training.trainer
        checkpoint = resolve_resume(config.resume, out) if config.resume else None
        resumed_from = None
        if checkpoint is not None:
            resumed_from = training.resume(checkpoint).get("run_id") or (
                config.resume if RUN_ID.match(config.resume) else None
            )
        if not dist.main:
            trainer.fit()
            return TrainResult(None, None, None, trainer.state.epoch)
        params = {
            **applicable(config),  # the rest, e.g. other architectures' options, only in config.json
            "world_size": dist.world,
            "downsample": training.store.downsample,
            "in_channels": len(training.recipe.variables),
        }
        with (
            training_patience(),
            step_run(
                "train", params, system_metrics=True, name=run_name("train", config.model, training.store.root.name)
            ) as run,
        ):
            trainer.run_id = run.info.run_id
            mlflow.set_tags(
                {
                    "seaice.store_digest": training.store.digest,
                    "seaice.store": str(training.store.root),
                    "seaice.model": config.model,
                    "seaice.git_commit": git_commit() or "unknown",
                }
            )
            if checkpoint is not None:
                mark_resumed(run.info.run_id, resumed_from, checkpoint)
            take_over("train", {"out": params["out"]}, echo)  # a killed training into the same folder
            scenes = [s.record | {"split": s.split} for s in training.store.scenes() if s.split in ("train", "val")]
            log_scene_dataset(
                scenes, source=str(training.store.root), name=training.store.root.name, context="training"
            )
            mlflow.log_dict(config.as_params(), "config.json")
            mlflow.log_dict(training.recipe.as_dict(), "recipe.json")

            hint = resume_hint(out, run.info.run_id)
            log = EpochLog(echo, hint)

            def epoch_done(report: EpochReport) -> None:
                log.epoch(report.epoch, report.metrics, report.checkpoint)
                if on_epoch is not None:
                    on_epoch(report)

            try:
                state = trainer.fit(epoch_done)
            except Interrupted as err:
                done = (
                    f"epoch {trainer.state.epoch} is in {out / LAST}; {hint}"
                    if trainer.state.epoch
                    else "no epoch was completed, so there is nothing to resume"
                )
                raise Interrupted(
                    err.signal_name,
                    err.exit_code,
                    f"training interrupted by {err.signal_name} "
                    f"in epoch {trainer.state.epoch + 1}; run {run.info.run_id} ends KILLED; "
                    f"{done}",
                ) from None
            log.wait()
            try:
                return log_trained_model(training, state, run.info.run_id, echo)
            except MlflowException as err:
                raise TrackingUnavailable(
                    f"logging the trained model failed ({connection_problem(err)}); the checkpoints are kept: {hint}"
                ) from None
    finally:
        # DDP's reducer holds the process group: drop the training first, so that the group's gloo
        # threads stop in destroy_process_group, not at interpreter exit (a rank aborted so, under load)
        training = trainer = None  # noqa: F841
        gc.collect()
        teardown(dist)


def resume_hint(out: Path, run_id: str) -> str:
    """The command that continues this training (the other options as they were given)."""
    return f"continue with `seaice train --resume {out / LAST}` (or `--resume {run_id}`) and the same options"


def mark_resumed(run_id: str, previous: str | None, checkpoint: Path) -> None:
    """Tag the resumed run with the run it continues; a previous run left RUNNING by a process that ended
    (a SIGKILL) becomes KILLED, with the runs under it (:func:`~seaice_mlflow.tracking.runs.end_abandoned`)."""
    mlflow.set_tags({"seaice.resumed_from": previous or "unknown", "seaice.resumed_from_checkpoint": str(checkpoint)})
    if previous is None or previous == run_id:
        return
    try:
        end_abandoned([mlflow.MlflowClient().get_run(previous)], run_id)
    except MlflowException:  # a run of another tracking store
        pass


def log_trained_model(
    training: ChartTraining, state: TrainingState, run_id: str, echo: Callable[[str], None] = stderr_line
) -> TrainResult:
    """The best checkpoint's scores, quicklooks and learning curves, its calibration, and the logged
    pyfunc model (``echo`` gets the warning of a model left uncalibrated)."""
    config = training.config
    best = load_checkpoint(Path(config.out) / BEST)
    training.network.load_state_dict(best["model"])
    summary = {"best_epoch": state.best_epoch, "epochs_trained": state.epoch}
    if training.val_scenes:
        scores, predictions = training.validate()
        summary.update({f"best_{k}": v for k, v in scores.metrics("val").items()})
        summary.update({f"best_val_{k}": v for k, v in training.patch_metrics("val").items()})
        log_quicklooks(training, predictions)
    recipe, calibration = calibrated_recipe(training, echo)
    summary.update(calibration)
    manifest = training.patch_manifest()
    if manifest:
        mlflow.log_table(pd.DataFrame(manifest), "patches/train_manifest.json")
    mlflow.log_metrics(summary)
    mlflow.log_artifact(str(Path(config.out) / BEST), "checkpoints")
    mlflow.log_figure(plots.learning_curves(state.history), "learning_curves.png")
    mlflow.log_dict(recipe.as_dict(), "recipe.json")  # with the temperatures
    info = log_chart_model(training.network, recipe)
    mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
    return TrainResult(run_id, info.model_uri, summary.get("best_val_combined"), state.epoch)


def calibrated_recipe(training: ChartTraining, echo: Callable[[str], None]) -> tuple[Recipe, dict[str, float]]:
    """The recipe with the temperatures fitted on the validation scenes (the network as it is: the best
    checkpoint's) and their metrics (:func:`calibration_metrics`); the tag ``seaice.calibration`` and,
    for charts left at temperature 1, a warning to ``echo`` say how it went."""
    if not training.val_scenes:
        note = "no validation scenes: the model is not calibrated (temperatures 1)"
        mlflow.set_tag("seaice.calibration", note)
        echo(f"warning: {note}; hold out scenes with `seaice preprocess --val-scenes N` to calibrate")
        return training.recipe, {}
    calibration = training.calibrate()
    note = "temperature scaling on the validation scenes"
    single = [head for head, c in calibration.items() if not c.fitted]
    if single:
        left = f"{', '.join(single)} left at temperature 1: their validation pixels hold fewer than 2 classes"
        note = f"{note}; {left}"
        echo(f"warning: {left}; hold out more varied scenes with `seaice preprocess --val-scenes N`")
    mlflow.set_tag("seaice.calibration", note)
    temperatures = {head: c.temperature for head, c in calibration.items() if c.fitted}
    return replace(training.recipe, temperatures=temperatures), calibration_metrics(calibration)


def calibration_metrics(calibration: Mapping[str, HeadCalibration]) -> dict[str, float]:
    """``temperature_<chart>``, ``calibration_pixels_<chart>`` and, on those pixels, ``best_val_<chart>_ece``
    and ``best_val_<chart>_ece_uncalibrated`` (percent; none for a chart without validation pixels)."""
    metrics: dict[str, float] = {}
    for head, c in calibration.items():
        metrics[f"temperature_{head}"] = c.temperature
        metrics[f"calibration_pixels_{head}"] = c.pixels
        if c.pixels:
            metrics[f"best_val_{head}_ece"], metrics[f"best_val_{head}_ece_uncalibrated"] = c.ece, c.ece_uncalibrated
    return metrics


def log_quicklooks(training: ChartTraining, predictions: dict) -> None:
    """Validation quicklooks: HH, reference and prediction of each chart, per scene."""
    for scene in training.val_scenes:
        hh = scene.read_sar(["nersc_sar_primary"], Window.full(scene.shape))["nersc_sar_primary"]
        reference = dict(zip(CHART_NAMES, scene.read_charts()))
        figure = plots.quicklook(hh, predictions[scene.scene_id].charts, reference, f"validation {scene.scene_id}")
        mlflow.log_figure(figure, f"quicklooks/{scene.scene_id}.png")
