"""``seaice train``: train a multi-task model on a store and log it to MLflow as a pyfunc model.

Options are generated from :class:`~seaice_mlflow.training.options.TrainConfig`, so the CLI,
the MLproject (tested) and the logged params share one list of names and defaults.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import fields
from typing import TYPE_CHECKING

import click

from seaice_mlflow.config import TRAIN
from seaice_mlflow.errors import Interrupted, option_name

if TYPE_CHECKING:  # the command imports torch only when it runs
    from seaice_mlflow.training.options import TrainConfig
    from seaice_mlflow.training.trainer import EpochReport

HELP = {
    "store": "Training store made by `seaice preprocess`.",
    "model": "Network: unet or deeplabv3.",
    "unet_filters": "U-Net filters per level (starter pack 16,32,64,64; MMSeaIce 32,32,64,64).",
    "deeplab_depth": "DeepLabV3 ResNet depth (18, 34, 50, 101, 152), truncated after layer3.",
    "pretrained": "Local torchvision ResNet state_dict for the DeepLabV3 backbone (none: random init).",
    "sic_head": "SIC as regression on the class index (MSE, rounded) or 11-way classification.",
    "variables": "Inputs: all (24), all+encodings (+ month, sin/cos lat/lon), compact, or a comma list.",
    "optimizer": "adamw or sgd.",
    "lr": "Learning rate.",
    "weight_decay": "Weight decay.",
    "momentum": "SGD momentum.",
    "scheduler": "cosine (warm restarts every --restart-epochs) or plateau (x0.5 after 4 flat epochs).",
    "restart_epochs": "Epochs between cosine warm restarts.",
    "epochs": "Maximum number of epochs.",
    "batches_per_epoch": "Training batches per epoch.",
    "batch_size": "Patches per batch (per process).",
    "patch_size": "Patch size in working-grid pixels.",
    "task_weights": "Loss weights of SIC,SOD,FLOE.",
    "class_weights": "Weigh classes by inverse square-root frequency in the training scenes: none, balanced "
                     "(every softmax head) or balanced:SOD (the heads named, comma list).",
    "focal_gamma": "Focal loss gamma for the classification heads (0: cross entropy).",
    "augment": "Augmentations: all, none, or a comma list of flip,rot90,scale,cutmix.",
    "class_balance": "Fraction of patches centred on a rare SOD/FLOE class.",
    "min_valid": "Reject patches with a smaller valid-SIC fraction.",
    "grad_clip": "Clip the gradient norm (0: off).",
    "amp": "Mixed precision on GPU.",
    "early_stopping": "Stop after this many epochs without a better validation score (0: never).",
    "val_tile": "Tile size of the full-scene validation inference.",
    "workers": "Patch loader worker processes.",
    "device": "auto, cpu or cuda.",
    "seed": "Seed of weights, patches and augmentations.",
    "resume": "Continue from a checkpoint file, a folder with last.pt, or an MLflow run id.",
    "out": "Folder for checkpoints (last.pt, best.pt).",
    "nproc": "Processes for distributed data parallel training (re-runs itself under torchrun).",
}


def train_options(command):
    """One click option per :class:`TrainConfig` field, default from :data:`config.TRAIN`."""
    from seaice_mlflow.training.options import TrainConfig

    for field in reversed(fields(TrainConfig)):
        name, default = field.name, getattr(TRAIN, field.name)
        option = option_name(name)
        if isinstance(default, bool):
            command = click.option(option, type=click.BOOL, is_flag=False, flag_value=True, default=default,
                                   show_default=True, help=HELP[name])(command)
        else:
            command = click.option(option, type=type(default), default=default, show_default=True,
                                   help=HELP[name])(command)
    return command


@click.command("train")
@train_options
def train_command(**options) -> None:
    """Train a multi-task model (SIC, SOD, FLOE) on a training store; log it to MLflow.

    Validates on the store's validation scenes every epoch with the official score, keeps the
    best checkpoint, and logs the best model as a pyfunc model (``models:/m-...``).
    """
    from seaice_mlflow.training.distributed import under_torchrun
    from seaice_mlflow.training.options import TrainConfig

    config = TrainConfig(**options)
    if config.nproc > 1 and not under_torchrun():
        raise SystemExit(run_under_torchrun(config))
    from seaice_mlflow.tracking.training import train

    result = train(config, on_epoch=EpochLines(config.epochs), echo=lambda line: click.echo(line, err=True))
    if result.run_id is not None:
        click.echo(f"run {result.run_id}: best val_combined {result.best_val_combined} "
                   f"after {result.epochs} epoch(s); model {result.model_uri}")


class EpochLines:
    """One line per epoch (loss, validation scores, seconds, time left), flushed, so that a log
    file or nohup shows progress as a terminal does."""

    def __init__(self, epochs: int):
        self.epochs, self.seconds = epochs, 0.0

    def __call__(self, report: EpochReport) -> None:
        from seaice_mlflow.charts import CHART_NAMES, CHARTS

        metrics, done = report.metrics, report.epoch + 1
        self.seconds += report.seconds
        line = f"epoch {done}/{self.epochs}  loss {metrics['train_loss']:.4f}"
        if "val_combined" in metrics:
            line += f"  val {metrics['val_combined']:.2f} (" + " ".join(
                f"{c} {metrics[f'val_{c}_{CHARTS[c].metric}']:.1f}" for c in CHART_NAMES) + ")"
            line += " best" if report.improved else ""
        left = self.seconds / done * (self.epochs - done)
        click.echo(f"{line}  {report.seconds:.1f} s  ETA {left / 60:.1f} min")


def run_under_torchrun(config: TrainConfig) -> int:
    """Start ``nproc`` processes of this command under torchrun; returns their exit status."""
    from seaice_mlflow.training.options import option_value

    args = []
    for name, value in config.as_params().items():
        args += [option_name(name), option_value(value)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={config.nproc}",
               "-m", "seaice_mlflow", "train", *args]
    with subprocess.Popen(command) as torchrun:
        try:
            return torchrun.wait()
        except Interrupted:  # torchrun passes SIGTERM on to the ranks; rank 0 ends its run and says how to resume
            torchrun.send_signal(signal.SIGTERM)
            return torchrun.wait()

