"""``seaice tune``: an Optuna study over training options, each trial a child MLflow run."""

from __future__ import annotations

import click

from seaice_mlflow.cli.options import options_from
from seaice_mlflow.tasks.autoice.config import TuneDefaults


@click.command("tune")
@click.option("--store", required=True, help="Training store made by `seaice preprocess` (with validation scenes).")
@options_from(TuneDefaults)
def tune_command(store: str, **options) -> None:
    """Tune training options with Optuna (TPE sampler, median pruner on the per-epoch validation
    score); each trial is a child run of the tune's MLflow run. Re-running the same study resumes it.

    Example: seaice tune --store outputs/store --trials 30 --space "lr=1e-5:1e-2:log,batch_size=8|16|32"
    --fixed "epochs=20,batches_per_epoch=100"
    """
    from seaice_mlflow.tasks.autoice.steps.tune import tune

    result = tune(store, TuneDefaults(**options), echo=lambda line: click.echo(line, err=True))
    best = ", ".join(f"{k}={v}" for k, v in result.best_params.items()) or "none yet"
    click.echo(f"run {result.run_id}: study {result.study_name} has {result.finished} finished trial(s); "
               f"best val_combined {result.best_value} with {best}")  # fmt: skip
