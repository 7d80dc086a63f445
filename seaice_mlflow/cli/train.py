"""``seaice train``: train a multi-task model on a store and log it to MLflow as a pyfunc model.

Options are generated from :class:`~seaice_mlflow.tasks.autoice.config.TrainDefaults` (names, defaults and help
text), which :class:`~seaice_mlflow.tasks.autoice.train_config.TrainConfig` extends with its checks, so the
CLI, the MLproject (tested) and the logged params share one definition.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from seaice_mlflow.cli.options import options_from
from seaice_mlflow.core.errors import Interrupted, option_name
from seaice_mlflow.tasks.autoice.config import TrainDefaults

if TYPE_CHECKING:  # the command imports torch only when it runs
    from seaice_mlflow.core.trainer import EpochReport
    from seaice_mlflow.tasks.autoice.train_config import TrainConfig


@click.command("train")
@options_from(TrainDefaults)
def train_command(**options) -> None:
    """Train a multi-task model (SIC, SOD, FLOE) on a training store; log it to MLflow.

    Validates on the store's validation scenes every epoch with the official score, keeps the
    best checkpoint, and logs the best model as a pyfunc model (``models:/m-...``).
    """
    from seaice_mlflow.core.distributed import under_torchrun
    from seaice_mlflow.tasks.autoice.train_config import TrainConfig

    config = TrainConfig(**options)
    if config.nproc > 1 and not under_torchrun():
        raise SystemExit(run_under_torchrun(config))
    from seaice_mlflow.tasks.autoice.steps.train import train

    result = train(config, on_epoch=EpochLines(config.epochs), echo=lambda line: click.echo(line, err=True))
    if result.run_id is not None:
        click.echo(
            f"run {result.run_id}: best val_combined {result.best_val_combined} "
            f"after {result.epochs} epoch(s); model {result.model_uri}"
        )


def chart_scores(metrics: dict[str, float]) -> str:
    """The validation part of an AutoICE epoch line: ``val 80.12 (SIC 71.0 SOD 91.4 FLOE 80.4)``."""
    from seaice_mlflow.tasks.autoice.charts import CHART_NAMES, CHARTS

    charts = " ".join(f"{c} {metrics[f'val_{c}_{CHARTS[c].score_metric}']:.1f}" for c in CHART_NAMES)
    return f"val {metrics['val_combined']:.2f} ({charts})"


class EpochLines:
    """One line per epoch (loss, validation scores, seconds, time left), flushed, so that a log
    file or nohup shows progress as a terminal does; ``scores`` writes the validation part from the
    epoch's metrics (default: the AutoICE charts'), ``err``: the lines go to stderr."""

    def __init__(self, epochs: int, scores: Callable[[dict[str, float]], str] = chart_scores, err: bool = False):
        self.epochs, self.scores, self.err, self.seconds = epochs, scores, err, 0.0

    def __call__(self, report: EpochReport) -> None:
        metrics, done = report.metrics, report.epoch + 1
        self.seconds += report.seconds
        line = f"epoch {done}/{self.epochs}  loss {metrics['train_loss']:.4f}"
        if "val_combined" in metrics:
            line += f"  {self.scores(metrics)}" + (" best" if report.improved else "")
        left = self.seconds / done * (self.epochs - done)
        click.echo(f"{line}  {report.seconds:.1f} s  ETA {left / 60:.1f} min", err=self.err)


def run_under_torchrun(config: TrainConfig) -> int:
    """Start ``nproc`` processes of this command under torchrun; returns their exit status."""
    from seaice_mlflow.tasks.autoice.train_config import option_value

    args = []
    for name, value in config.as_params().items():
        args += [option_name(name), option_value(value)]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={config.nproc}",
        "-m",
        "seaice_mlflow",
        "train",
        *args,
    ]
    with subprocess.Popen(command) as torchrun:
        try:
            return torchrun.wait()
        except Interrupted:  # torchrun passes SIGTERM on to the ranks; rank 0 ends its run and says how to resume
            torchrun.send_signal(signal.SIGTERM)
            return torchrun.wait()
