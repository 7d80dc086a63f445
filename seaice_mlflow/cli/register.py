"""``seaice register``: the experiment's best model becomes the registered champion."""

from __future__ import annotations

import click

from seaice_mlflow.cli.options import options_from
from seaice_mlflow.config import RegisterDefaults


@click.command("register")
@options_from(RegisterDefaults)
def register_command(experiment: str, model_name: str, metric: str, alias: str, stage: str, force: bool) -> None:
    """Register the experiment's best model and move the champion alias to the best version.

    Models are compared on a metric they all have; models with non-finite weights are skipped.
    Idempotent; concurrent calls converge on one champion, the best version by the metric.
    """
    import mlflow

    from seaice_mlflow.tracking.registry import find_experiment, register_best
    from seaice_mlflow.tracking.runs import log_params_once, resolve_tracking_uri, start_run

    resolve_tracking_uri()
    find_experiment(experiment)  # before the run starts: a typo must not create an experiment
    with start_run("register", "register", experiment=experiment):
        log_params_once({"experiment": experiment, "model_name": model_name, "metric": metric, "alias": alias,
                         "stage": stage, "force": force})
        promotion = register_best(experiment, model_name, metric, alias, stage, force)
        # not under the ranking metric's own name: this run must not look like a candidate
        mlflow.log_metrics({"registered_version": int(promotion.version), "champion_version": int(promotion.champion),
                            "promoted": float(promotion.promoted),
                            **({} if promotion.value is None else {"candidate_value": promotion.value})})
        mlflow.set_tags({"seaice.registered_model": model_name, "seaice.champion_uri": f"models:/{model_name}@{alias}",
                         "seaice.ranked_by": promotion.metric})
    for line in promotion.skipped:
        click.echo(line, err=True)
    click.echo(promotion.message)
