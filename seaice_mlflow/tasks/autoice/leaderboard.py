"""Scoring predictions against reference charts on disk (``seaice score``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seaice_mlflow.core.errors import SeaIceError
from seaice_mlflow.core.metrics import MetricSet, ScoreBoard
from seaice_mlflow.tasks.autoice.charts import AUTOICE
from seaice_mlflow.tasks.autoice.files.reader import find_references, reference_charts
from seaice_mlflow.tasks.autoice.upload import iter_upload_package, package_scenes


def score_upload_package(reference_dir: str | Path, package: str | Path, partial: bool = False) -> ScoreBoard:
    """Score an ``upload_package.nc`` against the reference charts in ``reference_dir``.

    Every scene of the package needs a reference; unless ``partial``, every reference scene
    needs a prediction too (the leaderboard scores all test scenes).
    """
    references = find_references(reference_dir)
    scenes = package_scenes(package)
    unknown = sorted(set(scenes) - set(references))
    if unknown:
        raise SeaIceError(
            f"{Path(package).name}: no reference charts in {reference_dir} for scene(s) "
            f"{', '.join(unknown)}; give the folder with their _prep_reference.nc files"
        )
    missing = sorted(set(references) - set(scenes))
    if missing and not partial:
        raise SeaIceError(
            f"{Path(package).name} has no prediction for {len(missing)} reference scene(s): "
            f"{', '.join(missing)}; predict them too, or pass --partial to score only the "
            "scenes in the package"
        )
    board = ScoreBoard(AUTOICE)
    for scene_id, prediction in iter_upload_package(package):
        reference = reference_charts(references[scene_id], prediction["SIC"].shape)
        board.add(scene_id, reference, prediction)
    return board


def score_summary(board: ScoreBoard, metric_set: MetricSet = "official") -> dict[str, Any]:
    """What ``seaice score --json`` prints: the pooled official scores (``combined``, one per chart,
    ``pixels``), ``scenes`` (the official scores per scene) and, with ``"all"``, ``metrics``: every
    metric per chart (:class:`~seaice_mlflow.core.metrics.HeadMetrics`, per class by class name)."""
    summary = {**board.pooled().as_dict(), "scenes": {k: v.as_dict() for k, v in board.per_scene().items()}}
    if metric_set == "all":
        summary["metrics"] = board.metric_table().as_dict()
    return summary
