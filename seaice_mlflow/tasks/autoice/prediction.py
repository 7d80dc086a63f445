"""Charts for new scenes: chart products and a quicklook per scene, optionally the upload package.

Scenes are ready-to-train or test ``_prep.nc`` files or raw files, given one by one or as
folders. A scene that cannot be read or charted is reported and skipped; the others are written.
The loop is :func:`~seaice_mlflow.tasks.autoice.charting.chart_scenes` with the chart-file sink
(:class:`ChartFileSink`: the netCDF product and/or GeoTIFFs and polygons), the quicklooks and, when
asked, the upload package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from seaice_mlflow.core.engine import ChartPrediction
from seaice_mlflow.tasks.autoice import charting
from seaice_mlflow.tasks.autoice.ensemble import SceneCharter
from seaice_mlflow.tasks.autoice.files.naming import find_scene_files
from seaice_mlflow.tasks.autoice.gis import GisOptions, ProductFormat
from seaice_mlflow.tasks.autoice.products import quicklook_name, write_products
from seaice_mlflow.tasks.autoice.scene import Scene
from seaice_mlflow.tasks.autoice.upload import UPLOAD_PACKAGE

PredictStatus = Literal["written", "skipped", "failed"]


@dataclass
class PredictionResult(charting.Outcomes[PredictStatus]):
    upload_package: Path | None = None

    @property
    def outputs(self) -> list[Path]:
        files = [p for o in self.having("written") for p in o.outputs]
        return files + ([self.upload_package] if self.upload_package else [])


class ChartFileSink(charting.SceneSink):
    """The chart products of each scene in ``formats`` (``<scene_id>_charts.nc``, the CF chart product;
    GeoTIFFs, polygons), with ``provenance`` as attributes."""

    def __init__(
        self,
        out: Path,
        provenance: Mapping[str, object],
        charter: SceneCharter,
        formats: Sequence[ProductFormat] = ("netcdf",),
        gis: GisOptions = GisOptions(),
    ):
        self.out, self.provenance, self.charter = Path(out), provenance, charter
        self.formats, self.gis = tuple(formats), gis

    def add(self, scene: Scene, prediction: ChartPrediction) -> list[Path]:
        provenance = {**self.provenance, "source_scene_kind": scene.kind,
                      "input_repairs": scene.non_finite.note() or None}  # fmt: skip
        return write_products(self.out, scene, prediction, provenance, self.charter.sic_value, self.formats, self.gis)


def nothing_charted(files: Sequence[Path], outcomes: Sequence[charting.SceneOutcome]) -> str:
    return f"none of the {len(files)} scene file(s) could be charted" + (
        f" ({outcomes[0].message})"
        if outcomes
        else "; give scene files (*_prep.nc or raw S1*_icechart_*.nc) or folders of them"
    )


PREDICT = charting.ChartingRules(
    done="written",
    verb="charted",
    repeat_remedy="give each scene once",
    out_of_memory="use a smaller --tile or --batch, or leave out --probabilities",
    nothing_done=nothing_charted,
)


def expand_scene_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Scene files given directly, plus the scene files (not references) of given folders; a path
    that does not exist is kept (it is reported as missing when predicted)."""
    out: list[Path] = []
    for path in map(Path, paths):
        for file in find_scene_files(path) if path.is_dir() else [path]:
            if file not in out:
                out.append(file)
    return out


@dataclass(frozen=True)
class ChartJob:
    """What charting any scene of a predict run needs besides the model: where and what to write
    (``provenance``: the products' global attributes)."""

    out: Path
    provenance: Mapping[str, object]
    probabilities: bool = False
    uncertainty: bool = False
    formats: tuple[ProductFormat, ...] = ("netcdf",)
    gis: GisOptions = GisOptions()


def scene_sinks(job: ChartJob, charter: SceneCharter) -> list[charting.SceneSink]:
    """The per-scene sinks of predict: the products in ``job.formats`` and the quicklook."""
    return [
        ChartFileSink(job.out, job.provenance, charter, job.formats, job.gis),
        charting.QuicklookSink(job.out, quicklook_name, blank_outside=True),
    ]


def predict_files(
    charter: SceneCharter,
    files: Iterable[Path],
    job: ChartJob,
    upload_package: bool = False,
    on_scene: Callable[[charting.SceneOutcome], None] | None = None,
    skip: Callable[[Path], str] | None = None,
) -> PredictionResult:
    """Chart every file into ``job.out`` (the products, ``<scene_id>_charts.png``, ``upload_package.nc``);
    ``skip``: why a file need not be charted (:class:`~seaice_mlflow.tasks.autoice.rerun.ExistingProducts`)."""
    package = Path(job.out) / UPLOAD_PACKAGE if upload_package else None
    sinks = scene_sinks(job, charter)
    if package is not None:
        sinks.append(charting.UploadSink(package))
    outcomes = charting.chart_scenes(
        files, charter, sinks, PREDICT, job.probabilities, on_scene, uncertainty=job.uncertainty, skip=skip
    )
    return PredictionResult(outcomes, package)
