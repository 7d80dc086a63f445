"""Checking scene files before a long job (``seaice inspect``): kind, shape, variables, coverage, and
the input values that are not finite (NaN, inf) with what reading does with them (:mod:`.nonfinite`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from seaice_mlflow.core.errors import SeaIceError
from seaice_mlflow.tasks.autoice.charts import CHARTS, IGNORE_INDEX
from seaice_mlflow.tasks.autoice.files.naming import REFERENCE, parse_scene_name
from seaice_mlflow.tasks.autoice.files.netcdf import check_file, open_scene_file
from seaice_mlflow.tasks.autoice.files.nonfinite import NonFinite
from seaice_mlflow.tasks.autoice.files.prep import read_charts
from seaice_mlflow.tasks.autoice.files.reader import read_scene


@dataclass
class FileReport:
    """What ``seaice inspect`` says about one file."""

    path: str
    ok: bool
    kind: str | None = None  # ready, test, reference, raw
    scene_id: str | None = None
    shape: list[int] | None = None  # 80 m grid (raw files are converted)
    variables: list[str] = field(default_factory=list)
    valid_fraction: float | None = None  # SAR pixels with data (references: SIC not masked)
    histograms: dict[str, list[int]] = field(default_factory=dict)  # class counts, 255 last
    non_finite: dict[str, object] = field(default_factory=dict)  # NonFinite.as_dict(): masked and filled
    problem: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """One line: OK/BAD, file, kind, shape, coverage (or the problem)."""
        if not self.ok:
            return f"BAD {self.path}: {self.problem}"
        charts = "charts" if self.histograms else "no charts"
        repaired = NonFinite(**self.non_finite).note() if self.non_finite else ""
        return (
            f"OK  {self.path}: {self.kind}, {self.shape[0]}x{self.shape[1]} px, "
            f"{len(self.variables)} variables, {100 * self.valid_fraction:.1f}% valid, {charts}"
            + (f"; {repaired}" if repaired else "")
        )


def chart_histograms(charts: dict[str, np.ndarray]) -> dict[str, list[int]]:
    """Pixel count of each class of each chart, the masked (255) count last."""
    out = {}
    for name, values in charts.items():
        counts = np.bincount(values.ravel(), minlength=256)
        out[name] = counts[: CHARTS[name].n_classes].tolist() + [int(counts[IGNORE_INDEX])]
    return out


def inspect_file(path: str | Path) -> FileReport:
    """Read and validate one file; problems are reported, never raised."""
    path = Path(path)
    report = FileReport(path=str(path), ok=False)
    try:
        check_file(path)
        name = parse_scene_name(path)
        report.scene_id = name.key
        with open_scene_file(path) as ds:
            report.variables = sorted(str(v) for v in ds.data_vars)
        if name.file_kind == REFERENCE:
            charts = read_charts(path)
            report.kind = "reference"
            report.shape = list(charts["SIC"].shape)
            report.valid_fraction = float(np.mean(charts["SIC"] != IGNORE_INDEX))
        else:
            scene = read_scene(path, reference=False)
            charts = scene.charts
            report.kind = scene.kind
            report.shape = list(scene.shape)
            report.valid_fraction = float(np.mean(scene.sar_valid))
            report.non_finite = scene.non_finite.as_dict()
        report.histograms = chart_histograms(charts)
        report.ok = True
    except SeaIceError as err:
        report.problem = str(err)
    return report


def expand_paths(paths: list[str | Path]) -> list[Path]:
    """Files given directly, plus the ``.nc`` files of given folders (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        out.extend(sorted(p.glob("*.nc")) if p.is_dir() else [p])
    return out
