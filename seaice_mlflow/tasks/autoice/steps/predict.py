"""A predict run in MLflow: chart products for new scenes, with the run's params, outputs and quicklooks."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow

from seaice_mlflow.core.engine import TileOptions, resolve_device
from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.core.io import check_writable
from seaice_mlflow.core.lists import split_paths, split_values
from seaice_mlflow.tasks.autoice.charting import SceneOutcome
from seaice_mlflow.tasks.autoice.gis import GisOptions, check_options, parse_formats
from seaice_mlflow.tasks.autoice.logged_models import charting_run
from seaice_mlflow.tasks.autoice.prediction import PredictionResult, expand_scene_paths, predict_files
from seaice_mlflow.tasks.autoice.products import quicklook_name
from seaice_mlflow.tracking.model_refs import ModelRef
from seaice_mlflow.tracking.runs import public_uri


@dataclass
class PredictRun:
    run_id: str
    result: PredictionResult
    models: list[ModelRef]
    out: Path

    @property
    def failed(self) -> list[SceneOutcome]:
        return self.result.having("failed")


def provenance(refs: Sequence[ModelRef], run_id: str, options: TileOptions, device: str) -> dict[str, object]:
    """Global attributes of the chart products that say which model(s) made them and how."""

    def joined(values) -> str | None:
        values = list(values)
        return ", ".join(v or "unknown" for v in values) if any(values) else None

    return {
        "model_uri": joined(r.uri for r in refs),
        "model_uri_loaded": joined(r.loaded_uri for r in refs),
        "model_id": joined(r.model_id for r in refs),
        "model_source_run_id": joined(r.run_id for r in refs),
        "registered_model_name": joined(r.name for r in refs),
        "registered_model_version": joined(r.version for r in refs),
        "ensemble_size": len(refs),
        "mlflow_run_id": run_id,
        "mlflow_tracking_uri": public_uri(mlflow.get_tracking_uri()),
        "inference": f"tiled, tile {options.tile}, overlap {options.overlap}, device {device}",
    }


def predict(
    model_uris: str | Sequence[str],
    scenes: str | Sequence[str],
    out: str | Path,
    device: str = "auto",
    upload_package: bool = False,
    probabilities: bool = False,
    options: TileOptions = TileOptions(),
    on_scene: Callable[[SceneOutcome], None] | None = None,
    format: str | Sequence[str] = "netcdf",
    gis: GisOptions = GisOptions(),
) -> PredictRun:
    """Chart ``scenes`` (files or folders) with the model(s) in the active (or a new) run ("predict");
    ``format``: the products per scene (``netcdf``, ``geotiff``, ``vector``), ``gis``: their CRS and grid."""
    uris, paths = split_values(model_uris), split_paths(scenes)
    resolve_device(device)  # a clear error before the run starts
    formats, gis = parse_formats(format), check_options(gis)
    files = expand_scene_paths(paths)
    if not files:
        raise ParameterError(
            "scenes",
            f"no scene files in {', '.join(paths) or 'nothing'}; give *_prep.nc or raw "
            "S1*_icechart_*.nc files, or folders of them",
        )
    out = check_writable(Path(out).resolve(), "out")  # before the model is loaded
    params = {
        "scenes": " ".join(paths),
        "out": str(out),
        "upload_package": upload_package,
        "probabilities": probabilities,
        "format": ",".join(formats),
        "crs": gis.crs,
        "pixel_size": gis.pixel_size,
    }
    with charting_run("predict", uris, device, options, params) as (run, charter, refs):
        mlflow.set_tag("seaice.charts_dir", str(out))
        attrs = provenance(refs, run.info.run_id, options, charter.predictor.device.type)
        result = predict_files(charter, files, out, attrs, probabilities, upload_package, on_scene, formats, gis)
        written = result.having("written")
        mlflow.log_metrics(
            {
                "predict_scenes": len(written),
                "predict_scenes_failed": len(result.having("failed")),
                "predict_seconds_per_scene": sum(o.seconds for o in written) / len(written),
            }
        )
        mlflow.log_text(
            json.dumps(
                {
                    "files": [
                        {"scene_id": o.scene_id, "source": str(o.file), "outputs": [str(p) for p in o.outputs]}
                        for o in written
                    ],
                    "upload_package": str(result.upload_package) if result.upload_package else None,
                    "failed": [{"source": str(o.file), "problem": o.message} for o in result.having("failed")],
                },
                indent=1,
            ),
            "outputs.json",
        )
        for outcome in written:
            quicklook = next(p for p in outcome.outputs if p.name == quicklook_name(outcome.scene_id))
            mlflow.log_artifact(str(quicklook), "quicklooks")
        if result.upload_package is not None:
            mlflow.log_artifact(str(result.upload_package))
        return PredictRun(run.info.run_id, result, refs, out)
