"""An evaluate run in MLflow: the official test scores of one model or an ensemble, and the files
behind them (upload package, per-scene CSV, confusion matrices, quicklooks)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from seaice_mlflow.charts import CHART_NAMES
from seaice_mlflow.data.naming import find_scene_files
from seaice_mlflow.errors import ParameterError
from seaice_mlflow.inference.engine import TileOptions, resolve_device
from seaice_mlflow.inference.evaluation import EvaluationResult, SceneOutcome, evaluate_files
from seaice_mlflow.inference.prediction import split_values
from seaice_mlflow.io import atomic_path
from seaice_mlflow.tracking.models import ModelRef, load_charter, model_tags
from seaice_mlflow.tracking.runs import log_params_once, log_scene_dataset, start_run


@dataclass
class EvaluateRun:
    run_id: str
    metrics: dict[str, float]  # test_SIC_r2, test_SOD_f1, test_FLOE_f1, test_combined
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
        raise ParameterError("data_dir", f"{data_dir} is not a folder; give the folder with the test scenes")
    files = find_scene_files(data_dir)
    if not files:
        raise ParameterError("data_dir", f"{data_dir} holds no AI4Arctic scene files (*_prep.nc with "
                             "_prep_reference.nc, ready-to-train or raw S1*_icechart_*.nc files)")
    return files


def evaluate(model_uris: str | Sequence[str], data_dir: str | Path, upload_package: str | Path | None = None,
             device: str = "auto", options: TileOptions = TileOptions(),
             on_scene: Callable[[SceneOutcome], None] | None = None) -> EvaluateRun:
    """Score the model(s) on ``data_dir`` in the active (or a new) MLflow run ("evaluate")."""
    uris = split_values(model_uris)
    resolve_device(device)  # a clear error before the run starts
    files = scene_files(data_dir)
    target = Path(upload_package).resolve() if upload_package else None
    if target is not None and target.is_dir():
        raise ParameterError("upload_package", f"{target} is a folder; give the file to write, e.g. "
                             f"{target / 'upload_package.nc'}")
    with start_run("evaluate", "evaluate") as run:
        log_params_once({"model_uri": " ".join(uris), "data_dir": str(Path(data_dir).resolve()),
                         "upload_package": str(target or ""), "device": device, "tile": options.tile,
                         "overlap": options.overlap, "batch": options.batch})
        charter, refs = load_charter(uris, device, options)
        mlflow.set_tags({**model_tags(refs), "seaice.data_dir": str(Path(data_dir).resolve()),
                         "seaice.downsample": str(charter.recipe.downsample)})
        with tempfile.TemporaryDirectory(prefix="seaice-evaluate-") as tmp:
            result = evaluate_files(charter, files, Path(tmp), on_scene)
            metrics = result.pooled.metrics("test")
            log_test_metrics(metrics, refs)
            scored = result.having("scored")
            mlflow.log_metrics({"eval_scenes": len(scored), "eval_scenes_failed": len(result.having("failed")),
                                "eval_scenes_skipped": len(result.having("skipped")),
                                "eval_seconds_per_scene": sum(o.seconds for o in scored) / len(scored),
                                **{f"eval_pixels_{c}": result.pooled.pixels[c] for c in CHART_NAMES}})
            mlflow.log_artifacts(tmp)
            if result.having("failed") or result.having("skipped"):
                mlflow.log_text("\n".join(f"{o.status} {o.file}: {o.message}" for o in result.outcomes
                                          if o.status != "scored"), "scenes_not_scored.txt")
            if target is not None:
                with atomic_path(target) as part:
                    shutil.copyfile(result.upload_package, part)
        log_scene_dataset(result.records, source=str(Path(data_dir).resolve()), name=Path(data_dir).resolve().name,
                          context="evaluation")
        return EvaluateRun(run.info.run_id, metrics, result, refs, target)


def log_test_metrics(metrics: dict[str, float], refs: Sequence[ModelRef]) -> None:
    """The pooled scores, linked to the logged model when a single one was scored (its page in
    the MLflow UI then lists them too)."""
    model_id = refs[0].model_id if len(refs) == 1 else None
    try:
        mlflow.log_metrics(metrics, model_id=model_id)
    except MlflowException:
        if model_id is None:
            raise
        mlflow.log_metrics(metrics)  # e.g. a model of another tracking server: the run has the scores
