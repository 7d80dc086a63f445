"""A training run in MLflow: params, tags, dataset, per-epoch metrics, checkpoints, plots, the model."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import mlflow
import torch

from seaice_mlflow import plots
from seaice_mlflow.charts import CHART_NAMES
from seaice_mlflow.data.grid import Window
from seaice_mlflow.training.checkpoint import BEST, load_checkpoint, resolve_resume
from seaice_mlflow.training.distributed import setup, teardown
from seaice_mlflow.training.options import TrainConfig
from seaice_mlflow.training.trainer import EpochReport, Trainer
from seaice_mlflow.tracking.pyfunc import log_chart_model
from seaice_mlflow.tracking.runs import MODEL_URI_TAG, log_params_once, log_scene_dataset, start_run


@dataclass
class TrainResult:
    run_id: str | None
    model_uri: str | None  # models:/m-... of the logged model (rank 0 only)
    best_val_combined: float | None
    epochs: int


def git_commit() -> str | None:
    """The commit of the source tree this code runs from, when it is a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def train(config: TrainConfig) -> TrainResult:
    """Train as configured; rank 0 tracks everything in the active (or a new) MLflow run."""
    dist = setup(torch.device("cuda" if config.device != "cpu" and torch.cuda.is_available() else "cpu"))
    try:
        trainer = Trainer(config, dist)
        if config.resume:
            trainer.resume(resolve_resume(config.resume, Path(config.out)))
        if not dist.main:
            trainer.fit()
            return TrainResult(None, None, None, trainer.state.epoch)
        with start_run("train", "train", system_metrics=True) as run:
            log_params_once({**config.as_params(), "world_size": dist.world, "downsample": trainer.store.downsample,
                             "in_channels": len(trainer.recipe.variables)})
            mlflow.set_tags({"seaice.store_digest": trainer.store.digest, "seaice.store": str(trainer.store.root),
                             "seaice.model": config.model, "seaice.git_commit": git_commit() or "unknown"})
            if config.resume:
                mlflow.set_tag("seaice.resumed_from", config.resume)
            scenes = [s.record | {"split": s.split} for s in trainer.store.scenes() if s.split in ("train", "val")]
            log_scene_dataset(scenes, source=str(trainer.store.root), name=trainer.store.root.name, context="training")
            mlflow.log_dict(config.as_params(), "config.json")
            mlflow.log_dict(trainer.recipe.as_dict(), "recipe.json")

            def on_epoch(report: EpochReport) -> None:
                mlflow.log_metrics(report.metrics, step=report.epoch)
                mlflow.log_artifact(str(report.checkpoint), "checkpoints")

            state = trainer.fit(on_epoch)
            best = load_checkpoint(Path(config.out) / BEST)
            trainer.network.load_state_dict(best["model"])
            summary = {"best_epoch": state.best_epoch, "epochs_trained": state.epoch}
            if trainer.val_scenes:
                scores, predictions = trainer.validate()
                summary.update({f"best_{k}": v for k, v in scores.metrics("val").items()})
                log_quicklooks(trainer, predictions)
            mlflow.log_metrics(summary)
            mlflow.log_artifact(str(Path(config.out) / BEST), "checkpoints")
            mlflow.log_figure(plots.learning_curves(state.history), "learning_curves.png")
            info = log_chart_model(trainer.network, trainer.recipe)
            mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
            return TrainResult(run.info.run_id, info.model_uri, summary.get("best_val_combined"), state.epoch)
    finally:
        teardown(dist)


def log_quicklooks(trainer: Trainer, predictions: dict) -> None:
    """Validation quicklooks: HH, reference and prediction of each chart, per scene."""
    for scene in trainer.val_scenes:
        hh = scene.read_sar(["nersc_sar_primary"], Window.full(scene.shape))["nersc_sar_primary"]
        reference = dict(zip(CHART_NAMES, scene.read_charts()))
        figure = plots.quicklook(hh, predictions[scene.scene_id].charts, reference, f"validation {scene.scene_id}")
        mlflow.log_figure(figure, f"quicklooks/{scene.scene_id}.png")

