"""``seaice score``: the official AutoICE score of an upload package, and with ``--metrics all``
every metric per chart (accuracy, precision, recall, F1, IoU weighted and macro, per class)."""

from __future__ import annotations

from pathlib import Path

import click

from seaice_mlflow.cli.output import echo_json
from seaice_mlflow.core.metrics import METRIC_SETS, HeadMetrics, MetricSet
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES
from seaice_mlflow.tasks.autoice.config import BY_HELP, SEASON_TABLE_HELP

METRICS_HELP = (
    "official (default): the AutoICE scores; all: also accuracy, precision, recall, F1 and IoU (weighted and "
    "macro, per class) per chart, and RMSE/MAE for SIC (in class steps)."
)
#: Columns of the per-chart tables of ``--metrics all``.
RATIOS = ("precision", "recall", "f1", "iou")


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
@click.option("--metrics", "metric_set", type=click.Choice(METRIC_SETS), default="official", help=METRICS_HELP)
@click.option("--by", default="", help=BY_HELP)
@click.option(
    "--season-table",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help=SEASON_TABLE_HELP,
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def score(
    reference_dir: Path,
    predictions: Path,
    partial: bool,
    metric_set: MetricSet,
    by: str,
    season_table: Path | None,
    as_json: bool,
) -> None:
    """Official score (combined, SIC R2, SOD and FLOE weighted F1), pooled and per scene; with
    ``--by``, pooled per stratum of the scenes too."""
    from seaice_mlflow.tasks.autoice.files.metadata import read_season_table
    from seaice_mlflow.tasks.autoice.files.reader import find_references
    from seaice_mlflow.tasks.autoice.leaderboard import score_summary, score_upload_package
    from seaice_mlflow.tasks.autoice.strata import parse_strata_keys, strata_of_files

    board = score_upload_package(reference_dir, predictions, partial=partial)
    strata = []
    if parse_strata_keys(by):
        references = find_references(reference_dir)
        seasons = read_season_table(season_table) if season_table else None
        strata = strata_of_files(board, [references[s] for s in board.scenes], by, seasons)
    if as_json:
        summary = score_summary(board, metric_set)
        if strata:
            summary["strata"] = [s.as_dict() for s in strata]
        echo_json(summary)
        return
    pooled, scenes = board.pooled(), board.per_scene()
    header = f"{'scene':<22}{'combined':>10}" + "".join(f"{c:>10}" for c in CHART_NAMES)
    click.echo(header)
    for scene_id, s in scenes.items():
        click.echo(f"{scene_id:<22}{s.combined:>10.3f}" + "".join(f"{s.charts[c]:>10.3f}" for c in CHART_NAMES))
    click.echo("-" * len(header))
    click.echo(
        f"{'pooled (official)':<22}{pooled.combined:>10.3f}"
        + "".join(f"{pooled.charts[c]:>10.3f}" for c in CHART_NAMES)
    )
    for stratum in strata:
        approximated = ", season approximated" if "approximation" in stratum.season_sources else ""
        click.echo(
            f"{stratum.key + ' ' + stratum.value:<22}{stratum.scores.combined:>10.3f}"
            + "".join(f"{stratum.scores.charts[c]:>10.3f}" for c in CHART_NAMES)
            + f"  ({len(stratum.scenes)} scene(s){approximated})"
        )
    if metric_set == "all":
        for chart, metrics in board.metric_table().heads.items():
            click.echo("\n" + "\n".join(metrics_lines(chart, metrics)))


def metrics_lines(chart: str, metrics: HeadMetrics) -> list[str]:
    """A readable table of one chart's metrics (percent; RMSE and MAE in class steps)."""
    row = "{:<22}" + "{:>11.3f}" * len(RATIOS)
    lines = [f"{chart} (pooled): accuracy {metrics.accuracy:.3f}"]
    if metrics.r2 is not None:
        lines.append(
            f"R2 {metrics.r2:.3f}, RMSE {metrics.rmse:.3f}, MAE {metrics.mae:.3f} (RMSE and MAE in class steps)"
        )
    lines.append(f"{'class':<22}" + "".join(f"{c:>11}" for c in RATIOS) + f"{'pixels':>12}")
    lines += [
        row.format(name, *(getattr(c, r) for r in RATIOS)) + f"{c.pixels:>12}" for name, c in metrics.per_class.items()
    ]
    lines.append(row.format("weighted", metrics.precision, metrics.recall, metrics.f1, metrics.iou))
    lines.append(
        row.format("macro (present)", metrics.macro_precision, metrics.macro_recall, metrics.macro_f1, metrics.mean_iou)
    )
    return lines
