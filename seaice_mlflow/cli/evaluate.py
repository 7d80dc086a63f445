"""``seaice evaluate``: official test scores of one model or an ensemble, tracked as an MLflow run."""

from __future__ import annotations

from pathlib import Path

import click

from seaice_mlflow.cli.options import options_from
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES
from seaice_mlflow.tasks.autoice.config import EvaluateDefaults

MODEL_URI_FORMS = (
    "MLflow model URI: runs:/<run>/model, models:/m-<id>, models:/<name>@<alias>, models:/<name>/<version|stage>."
)
MODEL_URI_HELP = (
    f"{MODEL_URI_FORMS} Repeat it, or separate URIs by commas or spaces, to ensemble models (probabilities averaged)."
)


def model_uri_option(command):
    return click.option("--model-uri", "model_uri", multiple=True, required=True, metavar="URI", help=MODEL_URI_HELP)(
        command
    )


@click.command("evaluate")
@model_uri_option
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder of scenes with reference charts: test _prep.nc files with their "
    "_prep_reference.nc, ready-to-train files or raw files with an ice chart.",
)
@options_from(EvaluateDefaults)
def evaluate_command(
    model_uri: tuple[str, ...],
    data_dir: Path,
    upload_package: str,
    by: str,
    season_table: str,
    device: str,
    tile: int,
    overlap: int,
    batch: int,
) -> None:
    """Score model(s) on the scenes of DATA_DIR with the official AutoICE metric; log to MLflow.

    Logs test_SIC_r2, test_SOD_f1, test_FLOE_f1, test_combined (pooled over all scenes, as the
    leaderboard) and every other metric of each chart (test_<chart>_accuracy, _precision, _recall,
    _macro_f1, _iou, _mean_iou, ...; SIC also _rmse, _mae), per_class_metrics.csv, scores per
    scene, confusion matrices, quicklooks and upload_package.nc; with --by, the same official
    scores per stratum (test_melt_combined, test_region_<name>_SOD_f1, ...; strata.csv, strata.png).
    A bad scene is reported and skipped, the others are scored, and the exit status is 1.
    """
    from seaice_mlflow.core.engine import TileOptions
    from seaice_mlflow.tasks.autoice.steps.evaluate import evaluate

    def report(outcome) -> None:
        if outcome.status == "scored":
            click.echo(f"scored  {outcome.scene_id} ({outcome.seconds:.1f} s)")
            if outcome.message:  # input values that were not finite, masked or filled
                click.echo(f"note    {outcome.scene_id}: {outcome.message}", err=True)
        elif outcome.status == "skipped":
            click.echo(f"skipped {outcome.file}: {outcome.message}", err=True)
        else:
            click.echo(f"FAILED  {outcome.file}: {outcome.message}", err=True)

    done = evaluate(
        model_uri,
        data_dir,
        upload_package or None,
        device,
        TileOptions(tile, overlap, batch),
        on_scene=report,
        warn=lambda line: click.echo(line, err=True),
        by=by,
        season_table=season_table or None,
    )
    pooled = done.result.pooled
    click.echo(f"{'scene':<22}{'combined':>10}" + "".join(f"{c:>10}" for c in CHART_NAMES))
    for scene_id, scores in done.result.board.per_scene().items():
        click.echo(
            f"{scene_id:<22}{scores.combined:>10.3f}" + "".join(f"{scores.charts[c]:>10.3f}" for c in CHART_NAMES)
        )
    click.echo(
        f"{'pooled (official)':<22}{pooled.combined:>10.3f}"
        + "".join(f"{pooled.charts[c]:>10.3f}" for c in CHART_NAMES)
    )
    click.echo(
        f"run {done.run_id}: test_combined {done.metrics['test_combined']:.3f} on "
        f"{len(done.result.board.scenes)} scene(s)"
        + (f"; upload package {done.upload_package}" if done.upload_package else "")
    )
    if done.failed:
        click.echo(f"{len(done.failed)} scene file(s) failed (listed above)", err=True)
        raise SystemExit(1)
