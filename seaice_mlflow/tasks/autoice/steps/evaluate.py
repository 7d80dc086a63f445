"""An evaluate run in MLflow: the official test scores of one model or an ensemble, every other
metric per chart, and the files behind them (upload package, per-scene and per-class CSVs,
confusion matrices, quicklooks).

Metrics: ``test_combined``, the official ``test_SIC_r2``, ``test_SOD_f1``, ``test_FLOE_f1`` and,
per chart, ``test_<chart>_<metric>`` for every head-level metric of
:class:`~seaice_mlflow.core.metrics.HeadMetrics` (``accuracy``, ``precision``, ``recall``, ``f1``,
``macro_precision``, ``macro_recall``, ``macro_f1``, ``iou``, ``mean_iou``; for SIC also ``r2``,
``rmse`` and ``mae``, these two in class steps). Per-class values are in ``per_class_metrics.csv``.
Calibration, per classified chart: ``test_<chart>_ece`` (expected calibration error in percent, with
the models' temperatures) and ``test_<chart>_ece_uncalibrated`` (at temperature 1); the artifact
``reliability.png`` draws both reliability curves.

Scenes a model was trained or validated on (its recipe names them) are still scored, with a
warning; the run is then tagged ``seaice.scored_on_training_scenes=true`` (``eval_training_scenes``
counts them) and ``seaice register`` does not rank by its test scores.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow

from seaice_mlflow.core.engine import TileOptions, resolve_device
from seaice_mlflow.core.errors import ParameterError, looked_at
from seaice_mlflow.core.io import atomic_path, check_writable
from seaice_mlflow.core.lists import split_values
from seaice_mlflow.tasks.autoice import plots
from seaice_mlflow.tasks.autoice.charting import SceneOutcome
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES
from seaice_mlflow.tasks.autoice.evaluation import EvaluationResult, evaluate_files
from seaice_mlflow.tasks.autoice.files.metadata import read_season_table
from seaice_mlflow.tasks.autoice.files.naming import find_scene_files, parsed_names
from seaice_mlflow.tasks.autoice.logged_models import charting_run
from seaice_mlflow.tasks.autoice.strata import parse_strata_keys, strata_metrics, strata_of_files, write_strata_table
from seaice_mlflow.tracking.model_refs import ModelRef, log_test_metrics, seen_among, tag_seen
from seaice_mlflow.tracking.runs import log_scene_dataset


@dataclass
class EvaluateRun:
    run_id: str
    metrics: dict[str, float]  # test_combined, test_SIC_r2, test_SOD_f1, test_FLOE_f1, test_<chart>_<metric>
    result: EvaluationResult  # its files are gone; outcomes and confusions remain
    models: list[ModelRef]
    upload_package: Path | None  # the copy asked for with --upload-package

    @property
    def failed(self) -> list[SceneOutcome]:
        return self.result.having("failed")


def scene_files(data_dir: str | Path) -> list[Path]:
    """The scene files of ``data_dir`` (a clear error when it is no folder or holds none)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ParameterError("data_dir", f"{looked_at(data_dir)} is not a folder; give the folder with the test scenes")
    files = find_scene_files(data_dir)
    if not files:
        raise ParameterError(
            "data_dir",
            f"{data_dir} holds no AI4Arctic scene files (*_prep.nc with "
            "_prep_reference.nc, ready-to-train or raw S1*_icechart_*.nc files)",
        )
    return files


def evaluate(
    model_uris: str | Sequence[str],
    data_dir: str | Path,
    upload_package: str | Path | None = None,
    device: str = "auto",
    options: TileOptions = TileOptions(),
    on_scene: Callable[[SceneOutcome], None] | None = None,
    warn: Callable[[str], None] | None = None,
    by: str = "",
    season_table: str | Path | None = None,
) -> EvaluateRun:
    """Score the model(s) on ``data_dir`` in the active (or a new) MLflow run ("evaluate"); with
    ``by``, per stratum of the scenes too (``test_melt_combined``, ..., ``strata.csv``, ``strata.png``).

    ``warn`` gets one-line warnings (default: :func:`warnings.warn`); the command prints them.
    """
    uris = split_values(model_uris)
    resolve_device(device)  # clear errors before the run starts and scenes are scored
    parse_strata_keys(by)
    seasons = read_season_table(season_table) if season_table else None  # a bad table fails now
    files = scene_files(data_dir)
    target = check_writable(upload_package, "upload_package", kind="file") if upload_package else None
    params = {"data_dir": str(Path(data_dir).resolve()), "upload_package": str(target or ""), "by": by,
              "season_table": str(season_table or "")}  # fmt: skip
    with charting_run("evaluate", uris, device, options, params, len(files)) as (run, charter, refs):
        mlflow.set_tags(
            {"seaice.data_dir": str(Path(data_dir).resolve()), "seaice.downsample": str(charter.recipe.downsample)}
        )
        tag_seen(
            seen_among(refs, (name.key for _, name in parsed_names(files))),
            len(files),
            "scene",
            warn or (lambda line: warnings.warn(line, stacklevel=3)),
        )
        with tempfile.TemporaryDirectory(prefix="seaice-evaluate-") as tmp:
            result = evaluate_files(charter, files, Path(tmp), on_scene)
            metrics = {
                **result.metric_table.metrics("test"),
                **result.pooled.metrics("test"),
                **result.calibration_metrics("test"),
            }
            strata = strata_of_files(board=result.board, files=[r["source"]["file"] for r in result.records], by=by,
                                     seasons=seasons)  # fmt: skip
            if strata:
                metrics.update(strata_metrics(strata, "test"))
                write_strata_table(strata, Path(tmp) / "strata.csv")
                plots.save(plots.strata_scores(strata), Path(tmp) / "strata.png")
            log_test_metrics(metrics, refs)
            scored = result.having("scored")
            mlflow.log_metrics(
                {
                    "eval_scenes": len(scored),
                    "eval_scenes_failed": len(result.having("failed")),
                    "eval_scenes_skipped": len(result.having("skipped")),
                    "eval_seconds_per_scene": sum(o.seconds for o in scored) / len(scored),
                    **{f"eval_pixels_{c}": result.pooled.pixels[c] for c in CHART_NAMES},
                }
            )
            mlflow.log_artifacts(tmp)
            if result.having("failed") or result.having("skipped"):
                mlflow.log_text(
                    "\n".join(f"{o.status} {o.file}: {o.message}" for o in result.outcomes if o.status != "scored"),
                    "scenes_not_scored.txt",
                )
            if target is not None:
                with atomic_path(target) as part:
                    shutil.copyfile(result.upload_package, part)
        log_scene_dataset(
            result.records,
            source=str(Path(data_dir).resolve()),
            name=Path(data_dir).resolve().name,
            context="evaluation",
        )
        return EvaluateRun(run.info.run_id, metrics, result, refs, target)
