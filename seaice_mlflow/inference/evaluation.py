"""Official scores of a model (or ensemble) on a folder of scenes with reference charts.

Every scene with charts (a test ``_prep.nc`` with its ``_prep_reference.nc``, a ready-to-train
file, a raw file with an ice chart) is charted whole, tile by tile (read from the file window by
window, :func:`~seaice_mlflow.data.windowed.open_scene`), and counted into one
:class:`~seaice_mlflow.scoring.metrics.ScoreBoard`; the pooled score is the leaderboard's. Files
land in ``out``: the AutoICE ``upload_package.nc`` (written scene by scene; the same score comes
out of ``seaice score`` on it), ``scores_per_scene.csv``, confusion matrices (PNG, counts as
JSON) and a quicklook per scene. A scene that cannot be read is reported and skipped.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from seaice_mlflow import plots
from seaice_mlflow.charts import CHART_NAMES, CHARTS
from seaice_mlflow.data.windowed import open_scene
from seaice_mlflow.errors import SceneError, SeaIceError
from seaice_mlflow.inference.ensemble import SceneCharter
from seaice_mlflow.io import atomic_path
from seaice_mlflow.scoring.metrics import ScoreBoard, Scores
from seaice_mlflow.scoring.upload import UPLOAD_PACKAGE, UploadPackageWriter

PER_SCENE_CSV = "scores_per_scene.csv"
CONFUSION_JSON = "confusion_matrices.json"
CONFUSION_PNG = {"counts": "confusion_counts.png", "normalised": "confusion_normalised.png"}
QUICKLOOKS = "quicklooks"
EvaluateStatus = Literal["scored", "skipped", "failed"]


@dataclass
class SceneOutcome:
    """What happened to one file: ``scored``, ``skipped`` (no charts) or ``failed``."""

    file: Path
    status: EvaluateStatus
    message: str = ""
    scene_id: str = ""
    seconds: float = 0.0


@dataclass
class EvaluationResult:
    board: ScoreBoard
    outcomes: list[SceneOutcome] = field(default_factory=list)
    out: Path = Path(".")
    records: list[dict] = field(default_factory=list)  # scored scenes: id, kind, full_shape, source file

    @property
    def pooled(self) -> Scores:
        return self.board.pooled()

    def having(self, status: EvaluateStatus) -> list[SceneOutcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def upload_package(self) -> Path:
        return self.out / UPLOAD_PACKAGE


def evaluate_files(charter: SceneCharter, files: Sequence[Path], out: Path,
                   on_scene: Callable[[SceneOutcome], None] | None = None) -> EvaluationResult:
    """Chart and score every file with reference charts; outputs under ``out`` (see module doc)."""
    out = Path(out)
    result = EvaluationResult(ScoreBoard(), out=out)

    def report(outcome: SceneOutcome) -> None:
        result.outcomes.append(outcome)
        if on_scene is not None:
            on_scene(outcome)

    with UploadPackageWriter(out / UPLOAD_PACKAGE) as package:
        for path in files:
            started = time.perf_counter()
            try:
                with open_scene(path) as scene:  # read tile by tile
                    if not scene.has_charts:
                        report(SceneOutcome(path, "skipped", "no reference charts (no _prep_reference.nc beside "
                                            "it, no charts in the file); use `seaice predict` for it", scene.scene_id))
                        continue
                    if scene.scene_id in result.board.scenes:
                        raise SceneError(path, f"scene {scene.scene_id} was already evaluated from another file",
                                         "keep one file per scene in the folder")
                    prediction = charter.predict_scene(scene, progress=True)
                    result.board.add(scene.scene_id, scene.charts, prediction.charts)
                    result.records.append({"scene_id": scene.scene_id, "kind": scene.kind, "full_shape": scene.shape,
                                           "source": {"file": str(path)}})
                    package.add(scene.scene_id, prediction.charts)
                    figure = plots.quicklook(scene.sar["nersc_sar_primary"], prediction.charts, scene.charts,
                                             f"{scene.scene_id} ({path.name})")
                    plots.save(figure, out / QUICKLOOKS / f"{scene.scene_id}.png", dpi=80)
            except SeaIceError as err:
                report(SceneOutcome(path, "failed", str(err)))
                continue
            except (MemoryError, torch.OutOfMemoryError):
                report(SceneOutcome(path, "failed", f"{path.name}: out of memory; use a smaller --tile or --batch"))
                continue
            report(SceneOutcome(path, "scored", "", scene.scene_id, time.perf_counter() - started))
        if not result.board.scenes:
            raise SeaIceError(_nothing_scored(files, result.outcomes))
    write_tables(result)
    return result


def _nothing_scored(files: Sequence[Path], outcomes: Sequence[SceneOutcome]) -> str:
    if not files:
        return "no scene files (*_prep.nc or raw S1*_icechart_*.nc) to evaluate; check --data-dir"
    reasons = "; ".join(o.message for o in outcomes[:3]) + ("; ..." if len(outcomes) > 3 else "")
    return (f"none of the {len(files)} scene file(s) could be scored ({reasons}); evaluate needs scenes with "
            "reference charts (test files with their _prep_reference.nc, ready-to-train or raw files)")


def write_tables(result: EvaluationResult) -> None:
    """Per-scene CSV, confusion matrices as JSON (counts) and PNG (counts and row-normalised)."""
    board, out = result.board, result.out
    seconds = {o.scene_id: o.seconds for o in result.having("scored")}
    files = {o.scene_id: o.file.name for o in result.having("scored")}
    with atomic_path(out / PER_SCENE_CSV) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["scene_id", "file", "combined", *(f"{c}_{CHARTS[c].metric}" for c in CHART_NAMES),
                         *(f"{c}_pixels" for c in CHART_NAMES), "seconds"])
        for scene_id, scores in board.per_scene().items():
            writer.writerow([scene_id, files[scene_id], scores.combined, *(scores.charts[c] for c in CHART_NAMES),
                             *(scores.pixels[c] for c in CHART_NAMES), round(seconds[scene_id], 2)])
    confusions = {c: board.confusion(c) for c in CHART_NAMES}
    with atomic_path(out / CONFUSION_JSON) as tmp:
        tmp.write_text(json.dumps({c: confusion_table(c, cm) for c, cm in confusions.items()}, indent=1))
    for kind, name in CONFUSION_PNG.items():
        plots.save(plots.confusion_matrices(confusions, normalise=kind == "normalised"), out / name)


def confusion_table(chart: str, cm: np.ndarray) -> dict:
    """Pooled counts of one chart: rows reference classes, columns predicted classes (every
    value that occurs, at least the chart's classes)."""
    used = np.flatnonzero(cm.sum(axis=0) + cm.sum(axis=1))
    n = max(CHARTS[chart].n_classes, int(used.max()) + 1 if used.size else 0)
    return {"classes": list(range(n)), "class_names": list(CHARTS[chart].class_names),
            "rows": "reference", "columns": "prediction", "counts": cm[:n, :n].tolist()}
