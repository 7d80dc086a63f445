"""``seaice study KIND``: a case study (IceBench's), every setting and seed a child MLflow run."""

from __future__ import annotations

import click

from seaice_mlflow.cli.options import options_from
from seaice_mlflow.tasks.autoice.config import STUDY_KINDS, StudyDefaults


@click.command("study")
@click.argument("kind", type=click.Choice(STUDY_KINDS))
@options_from(StudyDefaults)
def study_command(kind: str, **options) -> None:
    """Compare training settings of one KIND: season, region, downsample, patch-size, data-size,
    data-prep or model. Each setting and seed is a child run (preprocess -> train -> evaluate);
    the study's run logs the comparison table and plot. A re-run runs only the missing children.

    Examples: seaice study data-size --values 0.25,0.5,1 --seeds 0,1,2;
    seaice study season --data-dir scenes --test-dir test --season-table seasons.csv;
    seaice study model --values "unet_filters=16,32,64,64;model=deeplabv3,deeplab_depth=50" --profile full
    """
    from seaice_mlflow.tasks.autoice.steps.study import study

    result = study(kind, StudyDefaults(**options), echo=lambda line: click.echo(line, err=True))
    click.echo(result.table, nl=False)
    click.echo(f"run {result.run_id}: {kind} study, {result.ran} child run(s) trained now, {result.reused} reused")
