"""``seaice pipeline`` (MLproject entry point ``main``): the whole chain as MLflow child runs."""

from __future__ import annotations

import click

from seaice_mlflow.cli.options import options_from
from seaice_mlflow.tasks.autoice.config import PipelineDefaults


@click.command("pipeline")
@options_from(PipelineDefaults)
def pipeline_command(**options) -> None:
    """preprocess -> train -> evaluate -> register -> predict, as child runs of one MLflow run."""
    from seaice_mlflow.tasks.autoice.steps.main import main

    done = main(PipelineDefaults(**options))
    result = done.result
    scores = result.scores
    click.echo(
        f"test combined {scores.get('test_combined', float('nan')):.3f} (per-pixel baseline "
        f"{result.baseline['baseline_test_combined']:.3f}); champion {result.champion_uri}"
    )
    for line in result.models.lines():
        click.echo(line)
    click.echo(f"charts: {result.charts}")
    click.echo("open the MLflow UI: mlflow ui --backend-store-uri " + done.tracking_uri)
