"""Official scores of a model (or ensemble) on a folder of scenes with reference charts.

Every scene with charts (a test ``_prep.nc`` with its ``_prep_reference.nc``, a ready-to-train
file, a raw file with an ice chart) is charted whole, tile by tile (read from the file window by
window, :func:`~seaice_mlflow.tasks.autoice.files.windowed.open_scene`), and counted into one
:class:`~seaice_mlflow.core.metrics.ScoreBoard`; the pooled score is the leaderboard's. Files
land in ``out``: the AutoICE ``upload_package.nc`` (written scene by scene; the same score comes
out of ``seaice score`` on it), ``scores_per_scene.csv``, ``per_class_metrics.csv`` (every
chart's classes: precision, recall, F1, IoU, reference pixels), confusion matrices (PNG, counts as
JSON), a quicklook per scene and the reliability diagram of each classified chart
(``reliability.png``, its bins in ``reliability.json``). A scene that cannot be read is reported and
skipped.

Calibration: for each classified chart the expected calibration error (top-label, 15 bins, percent;
:mod:`~seaice_mlflow.core.calibration`) over the scored pixels, with the models' temperatures
(``<chart>_ece``) and at temperature 1 (``<chart>_ece_uncalibrated``); the predictor gives both
confidences in one pass (the ``confidence`` and ``confidence_uncalibrated`` layers), and a pixel is
right when its chart class is the reference (for one model the class does not depend on the
temperature).

The loop is :func:`~seaice_mlflow.tasks.autoice.charting.chart_scenes` with four sinks: the score
board (:class:`ScoreSink`), the reliability tables (:class:`CalibrationSink`), the upload package and
the quicklooks; the tables come from the board.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from seaice_mlflow.core.calibration import ReliabilityTable
from seaice_mlflow.core.engine import ChartPrediction
from seaice_mlflow.core.io import atomic_path
from seaice_mlflow.core.metrics import MetricTable, ScoreBoard, Scores
from seaice_mlflow.core.uncertainty import LayerKind, layer_name
from seaice_mlflow.tasks.autoice import plots
from seaice_mlflow.tasks.autoice.charting import (
    ChartingRules,
    Outcomes,
    QuicklookSink,
    SceneOutcome,
    SceneSink,
    UploadSink,
    chart_scenes,
)
from seaice_mlflow.tasks.autoice.charts import AUTOICE, CHART_NAMES, CHARTS, IGNORE_INDEX
from seaice_mlflow.tasks.autoice.ensemble import SceneCharter
from seaice_mlflow.tasks.autoice.scene import Scene
from seaice_mlflow.tasks.autoice.upload import UPLOAD_PACKAGE

PER_SCENE_CSV = "scores_per_scene.csv"
PER_CLASS_CSV = "per_class_metrics.csv"
CONFUSION_JSON = "confusion_matrices.json"
CONFUSION_PNG = {"counts": "confusion_counts.png", "normalised": "confusion_normalised.png"}
QUICKLOOKS = "quicklooks"
RELIABILITY_PNG, RELIABILITY_JSON = "reliability.png", "reliability.json"
#: The uncertainty layers evaluate asks for, by reliability variant: the confidence with and without temperatures.
CALIBRATION_LAYERS: dict[str, LayerKind] = {"uncalibrated": "confidence_uncalibrated", "calibrated": "confidence"}
EvaluateStatus = Literal["scored", "skipped", "failed"]


@dataclass
class EvaluationResult(Outcomes[EvaluateStatus]):
    board: ScoreBoard
    out: Path
    records: list[dict]  # scored scenes: id, kind, full_shape, source file
    #: Per classified chart, the pooled reliability table of each variant (``calibrated``, ``uncalibrated``).
    reliability: dict[str, dict[str, ReliabilityTable]] = field(default_factory=dict)

    @property
    def pooled(self) -> Scores:
        return self.board.pooled()

    @property
    def metric_table(self) -> MetricTable:
        """Every metric per chart, pooled over the same pixels as :attr:`pooled`."""
        return self.board.metric_table()

    @property
    def upload_package(self) -> Path:
        return self.out / UPLOAD_PACKAGE

    def calibration_metrics(self, prefix: str) -> dict[str, float]:
        """``<prefix>_<chart>_ece`` and ``<prefix>_<chart>_ece_uncalibrated`` (percent) of each classified chart."""
        suffixes = {"calibrated": "ece", "uncalibrated": "ece_uncalibrated"}
        return {
            f"{prefix}_{chart}_{suffixes[variant]}": table.ece()
            for chart, tables in self.reliability.items()
            for variant, table in tables.items()
            if table.pixels
        }


class ScoreSink(SceneSink):
    """Counts each scene into the score board, against its reference charts, and records it."""

    def __init__(self, board: ScoreBoard):
        self.board = board
        self.records: list[dict] = []

    def add(self, scene: Scene, prediction: ChartPrediction) -> list[Path]:
        self.board.add(scene.scene_id, scene.charts, prediction.charts)
        self.records.append(
            {
                "scene_id": scene.scene_id,
                "kind": scene.kind,
                "full_shape": scene.shape,
                "source": {"file": str(scene.source)},
            }
        )
        return []


class CalibrationSink(SceneSink):
    """Pools, per classified chart, a reliability table of each confidence layer the prediction has
    (:data:`CALIBRATION_LAYERS`) over the scored pixels: those whose reference is not 255."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, ReliabilityTable]] = {}

    def add(self, scene: Scene, prediction: ChartPrediction) -> list[Path]:
        layers = prediction.uncertainty or {}
        for chart, reference in scene.charts.items():
            scored = reference != IGNORE_INDEX
            correct = prediction.charts[chart][scored] == reference[scored]
            for variant, kind in CALIBRATION_LAYERS.items():
                if layer_name(chart, kind) in layers:
                    table = self.tables.setdefault(chart, {}).setdefault(variant, ReliabilityTable())
                    table.add(layers[layer_name(chart, kind)][scored], correct)
        return []


def nothing_scored(files: Sequence[Path], outcomes: Sequence[SceneOutcome]) -> str:
    if not files:
        return "no scene files (*_prep.nc or raw S1*_icechart_*.nc) to evaluate; check --data-dir"
    reasons = "; ".join(o.message for o in outcomes[:3]) + ("; ..." if len(outcomes) > 3 else "")
    return (
        f"none of the {len(files)} scene file(s) could be scored ({reasons}); evaluate needs scenes with "
        "reference charts (test files with their _prep_reference.nc, ready-to-train or raw files)"
    )


EVALUATE = ChartingRules(
    done="scored",
    verb="evaluated",
    repeat_remedy="keep one file per scene in the folder",
    out_of_memory="use a smaller --tile or --batch",
    nothing_done=nothing_scored,
    without_charts="no reference charts (no _prep_reference.nc beside it, no charts in the file); use "
    "`seaice predict` for it",
)


def quicklook_file(scene_id: str) -> str:
    return f"{scene_id}.png"


def evaluate_files(
    charter: SceneCharter, files: Sequence[Path], out: Path, on_scene: Callable[[SceneOutcome], None] | None = None
) -> EvaluationResult:
    """Chart and score every file with reference charts; outputs under ``out`` (see module doc)."""
    out = Path(out)
    scores, calibration = ScoreSink(ScoreBoard(AUTOICE)), CalibrationSink()
    sinks = [scores, calibration, UploadSink(out / UPLOAD_PACKAGE), QuicklookSink(out / QUICKLOOKS, quicklook_file)]
    charter = replace(charter, layers=tuple(CALIBRATION_LAYERS.values()))
    outcomes = chart_scenes(files, charter, sinks, EVALUATE, on_scene=on_scene, uncertainty=True)
    result = EvaluationResult(outcomes, scores.board, out, scores.records, calibration.tables)
    write_tables(result)
    return result


def write_tables(result: EvaluationResult) -> None:
    """Per-scene and per-class CSVs, confusion matrices as JSON (counts) and PNG (counts and row-normalised)."""
    board, out = result.board, result.out
    seconds = {o.scene_id: o.seconds for o in result.having("scored")}
    files = {o.scene_id: o.file.name for o in result.having("scored")}
    with atomic_path(out / PER_SCENE_CSV) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "scene_id",
                "file",
                "combined",
                *(f"{c}_{CHARTS[c].score_metric}" for c in CHART_NAMES),
                *(f"{c}_pixels" for c in CHART_NAMES),
                "seconds",
            ]
        )
        for scene_id, scores in board.per_scene().items():
            writer.writerow(
                [
                    scene_id,
                    files[scene_id],
                    scores.combined,
                    *(scores.charts[c] for c in CHART_NAMES),
                    *(scores.pixels[c] for c in CHART_NAMES),
                    round(seconds[scene_id], 2),
                ]
            )
    write_per_class(result.metric_table, out / PER_CLASS_CSV)
    confusions = board.confusions()
    with atomic_path(out / CONFUSION_JSON) as tmp:
        tmp.write_text(json.dumps({c: confusion_table(c, cm) for c, cm in confusions.items()}, indent=1))
    for kind, name in CONFUSION_PNG.items():
        plots.save(plots.confusion_matrices(confusions, normalise=kind == "normalised"), out / name)
    reliability = {c: {v: t.as_dict() for v, t in tables.items()} for c, tables in result.reliability.items()}
    with atomic_path(out / RELIABILITY_JSON) as tmp:
        tmp.write_text(json.dumps(reliability, indent=1))
    plots.save(plots.reliability_diagram(result.reliability), out / RELIABILITY_PNG)


def write_per_class(table: MetricTable, path: Path) -> None:
    """One row per chart and class: precision, recall, F1 and IoU (percent) and reference pixels."""
    columns = ("precision", "recall", "f1", "iou", "pixels")
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["chart", "class", *columns])
        for chart, metrics in table.heads.items():
            for name, values in metrics.per_class.items():
                writer.writerow([chart, name, *(getattr(values, c) for c in columns)])


def confusion_table(chart: str, cm: np.ndarray) -> dict:
    """Pooled counts of one chart: rows reference classes, columns predicted classes (every
    value that occurs, at least the chart's classes)."""
    used = np.flatnonzero(cm.sum(axis=0) + cm.sum(axis=1))
    n = max(CHARTS[chart].n_classes, int(used.max()) + 1 if used.size else 0)
    return {
        "classes": list(range(n)),
        "class_names": list(CHARTS[chart].class_names),
        "rows": "reference",
        "columns": "prediction",
        "counts": cm[:n, :n].tolist(),
    }
