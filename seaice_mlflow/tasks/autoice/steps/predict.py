"""A predict run in MLflow: chart products for new scenes, with the run's params, outputs and quicklooks."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow

from seaice_mlflow.core.engine import TileOptions, resolve_device
from seaice_mlflow.core.errors import Interrupted, ParameterError
from seaice_mlflow.core.io import check_writable
from seaice_mlflow.core.lists import split_paths, split_values
from seaice_mlflow.tasks.autoice.charting import SceneOutcome
from seaice_mlflow.tasks.autoice.gis import GisOptions, check_options, check_pixel_size, parse_formats
from seaice_mlflow.tasks.autoice.logged_models import charting_run
from seaice_mlflow.tasks.autoice.prediction import ChartJob, PredictionResult, expand_scene_paths, predict_files
from seaice_mlflow.tasks.autoice.products import quicklook_name
from seaice_mlflow.tasks.autoice.rerun import SIGNATURE, ExistingProducts, chart_signature
from seaice_mlflow.tracking.model_refs import ModelRef
from seaice_mlflow.tracking.runs import public_uri

if TYPE_CHECKING:
    from seaice_mlflow.core.cluster import ClusterSpec


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


def log_outcomes(result: PredictionResult) -> None:
    """Counts, seconds per scene (a metric stepped by scene, and ``scenes.json``) of a predict run."""
    written = result.having("written")
    mlflow.log_metrics(
        {
            "predict_scenes": len(written),
            "predict_scenes_skipped": len(result.having("skipped")),
            "predict_scenes_failed": len(result.having("failed")),
            "predict_seconds_per_scene": sum(o.seconds for o in written) / len(written) if written else 0.0,
        }
    )
    for step, outcome in enumerate(written):
        mlflow.log_metric("scene_seconds", outcome.seconds, step=step)
    mlflow.log_table(
        {
            "scene_id": [o.scene_id for o in result.outcomes],
            "source": [str(o.file) for o in result.outcomes],
            "status": [o.status for o in result.outcomes],
            "seconds": [round(o.seconds, 3) for o in result.outcomes],
            "message": [o.message for o in result.outcomes],
        },
        "scenes.json",
    )


def on_dask(
    cluster: ClusterSpec,
    files: Sequence[Path],
    job: ChartJob,
    model_uris: Sequence[str],
    device: str,
    options: TileOptions,
    skip: Callable[[Path], str] | None,
    on_scene: Callable[[SceneOutcome], None] | None,
    on_cluster: Callable[[str], None] | None,
) -> PredictionResult:
    """The scenes charted on the Dask cluster ``cluster`` (:mod:`~seaice_mlflow.tasks.autoice.batch`),
    its size, dashboard and the workers' largest peak RSS logged."""
    from seaice_mlflow.core.cluster import cluster_size, dashboard, dask_client, worker_peak_rss
    from seaice_mlflow.tasks.autoice.batch import predict_on_cluster

    with dask_client(cluster) as client:
        workers = cluster_size(client)
        mlflow.log_params({"dask_workers": workers})
        mlflow.set_tag("seaice.dask_dashboard", dashboard(client))
        if on_cluster is not None:
            on_cluster(f"Dask cluster of {workers} worker(s); dashboard {dashboard(client)}")
        result = predict_on_cluster(client, files, job, model_uris, device, options, skip, on_scene)
        mlflow.log_metric("dask_worker_peak_rss_gib", max(worker_peak_rss(client).values(), default=0.0))
        return result


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
    uncertainty: bool = False,
    dask: str = "",
    overwrite: bool = False,
    on_cluster: Callable[[str], None] | None = None,
) -> PredictRun:
    """Chart ``scenes`` (files or folders) with the model(s) in the active (or a new) run ("predict");
    ``format``: the products per scene (``netcdf``, ``geotiff``, ``vector``), ``gis``: their CRS and grid;
    ``uncertainty``: the uncertainty layers in every product; ``dask``: ``local:N`` or a scheduler address to
    chart the scenes on (``on_cluster`` hears where its dashboard is); scenes whose products exist from the
    same model(s) are skipped unless ``overwrite`` (or ``upload_package``: it holds every scene)."""
    uris, paths = split_values(model_uris), split_paths(scenes)
    resolve_device(device)  # a clear error before the run starts
    formats, gis = parse_formats(format), check_options(gis)
    cluster = None
    if dask:
        from seaice_mlflow.core.cluster import parse_cluster

        cluster = parse_cluster(dask)
        if upload_package:
            raise ParameterError("upload_package", "the upload package holds every scene in one file and is not "
                                 "written from a Dask cluster; leave out --dask or --upload-package")  # fmt: skip
    files = expand_scene_paths(paths)
    if not files:
        raise ParameterError(
            "scenes",
            f"no scene files in {', '.join(paths) or 'nothing'}; give *_prep.nc or raw "
            "S1*_icechart_*.nc files, or folders of them",
        )
    if "geotiff" in formats:
        check_pixel_size(gis, files, uncertainty)  # reads the scenes' tie points, before the model is loaded
    out = check_writable(Path(out).resolve(), "out")  # before the model is loaded
    params = {
        "scenes": " ".join(paths),
        "out": str(out),
        "upload_package": upload_package,
        "probabilities": probabilities,
        "format": ",".join(formats),
        "crs": gis.crs,
        "pixel_size": gis.pixel_size,
        "uncertainty": uncertainty,
        "dask": dask,
        "overwrite": overwrite,
    }
    with charting_run("predict", uris, device, options, params, len(files)) as (run, charter, refs):
        mlflow.set_tag("seaice.charts_dir", str(out))
        signature = chart_signature(refs, probabilities, uncertainty, formats, gis)
        attrs = {**provenance(refs, run.info.run_id, options, charter.predictor.device.type), SIGNATURE: signature}
        skip = None if overwrite or upload_package else ExistingProducts(out, formats, signature)
        job = ChartJob(out, attrs, probabilities, uncertainty, formats, gis)
        try:
            if cluster is None:
                result = predict_files(charter, files, job, upload_package, on_scene, skip)
            else:  # the workers load the model(s) themselves, by the URIs pinned here
                result = on_dask(cluster, files, job, [r.loaded_uri for r in refs], device, options, skip, on_scene,
                                 on_cluster)  # fmt: skip
        except Interrupted as err:  # every product is written atomically: those done are whole
            kept = "the products written so far are kept" + ("" if skip is None else "; the same command skips them")
            raise err.ended("predict", run.info.run_id, f"{kept} in {out}") from None
        log_outcomes(result)
        written = result.having("written")
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
