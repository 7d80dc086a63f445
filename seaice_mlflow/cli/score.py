"""``seaice score``: the official AutoICE score of an upload package."""

from __future__ import annotations

import json
from pathlib import Path

import click

from seaice_mlflow.tasks.autoice.charts import CHART_NAMES
from seaice_mlflow.tasks.autoice.leaderboard import score_upload_package


@click.command()
@click.option(
    "--reference",
    "reference_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder with the reference charts (_prep_reference.nc or ready-to-train files).",
)
@click.option(
    "--predictions",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The upload_package.nc to score.",
)
@click.option("--partial", is_flag=True, help="Score only the reference scenes present in the package.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def score(reference_dir: Path, predictions: Path, partial: bool, as_json: bool) -> None:
    """Official score (combined, SIC R2, SOD and FLOE weighted F1), pooled and per scene."""
    board = score_upload_package(reference_dir, predictions, partial=partial)
    pooled, scenes = board.pooled(), board.per_scene()
    if as_json:
        click.echo(json.dumps({**pooled.as_dict(), "scenes": {k: v.as_dict() for k, v in scenes.items()}}))
        return
    header = f"{'scene':<22}{'combined':>10}" + "".join(f"{c:>10}" for c in CHART_NAMES)
    click.echo(header)
    for scene_id, s in scenes.items():
        click.echo(f"{scene_id:<22}{s.combined:>10.3f}" + "".join(f"{s.charts[c]:>10.3f}" for c in CHART_NAMES))
    click.echo("-" * len(header))
    click.echo(
        f"{'pooled (official)':<22}{pooled.combined:>10.3f}"
        + "".join(f"{pooled.charts[c]:>10.3f}" for c in CHART_NAMES)
    )
