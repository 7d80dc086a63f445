"""Raw 40 m AI4Arctic files -> the ready-to-train representation (spec section 2, "Raw files").

The recipe, applied strip by strip so that a 10,000 x 10,000 pixel file needs little memory:

1. the incidence angle is interpolated bilinearly from the 21 x 21 tie points;
2. charts come from ``polygon_icechart`` + ``polygon_codes`` (see :mod:`eggcode`);
3. masks are aligned at 40 m: where HH or HV is NaN, on land (distance zone 0) and, when the
   file has a chart, where no polygon lies, SAR, incidence angle and charts are all invalid;
4. 2 x 2 blocks are reduced to 80 m: mean of the valid pixels for SAR and incidence angle, mean
   for the distance map, max of the valid pixels for the charts (255 wins over classes);
5. inputs are standard-scaled with the global mean/std table; invalid SAR becomes 0 and invalid
   charts 255. AMSR2/ERA5 stay on the 2 km grid (float64 -> z-scored float32).

The synthetic generator writes its ready files through the same :func:`reduce_strip`, so a
scene written in both formats must read back identically (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seaice_mlflow.core.errors import SceneError
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES, IGNORE_INDEX
from seaice_mlflow.tasks.autoice.files.eggcode import PolygonCodeError, decode_polygons, parse_polygon_codes, rasterise
from seaice_mlflow.tasks.autoice.files.naming import SceneName
from seaice_mlflow.tasks.autoice.files.netcdf import check_layout, load_variable, open_scene_file
from seaice_mlflow.tasks.autoice.files.prep import SceneContent, build_scene
from seaice_mlflow.tasks.autoice.files.variables import COARSE_DIMS, COARSE_VARIABLES, SAR_DIMS, standard_scale
from seaice_mlflow.tasks.autoice.grid import interpolate_grid
from seaice_mlflow.tasks.autoice.scene import Scene

RAW_SAR_VARIABLES = ("nersc_sar_primary", "nersc_sar_secondary")
TIE_POINT_VARIABLES = (
    "sar_grid_line",
    "sar_grid_sample",
    "sar_grid_latitude",
    "sar_grid_longitude",
    "sar_grid_incidenceangle",
    "sar_grid_height",
)
TIE_POINT_DIM = "sar_grid_points"
RAW_LAYOUT: dict[str, tuple[str, ...]] = {
    **{name: SAR_DIMS for name in RAW_SAR_VARIABLES},
    "distance_map": SAR_DIMS,
    **{name: (TIE_POINT_DIM,) for name in TIE_POINT_VARIABLES},
    **{name: COARSE_DIMS for name in COARSE_VARIABLES},
}
POLYGON_VARIABLE = "polygon_icechart"
POLYGON_CODES = "polygon_codes"

#: 40 m lines converted at a time (even).
STRIP_LINES = 1024


@dataclass(frozen=True)
class TiePoints:
    """The raw files' geolocation grid: positions in 40 m pixels and values, axis 0 along lines."""

    lines: np.ndarray  # (n,) line position of each grid row
    samples: np.ndarray  # (m,) sample position of each grid column
    latitude: np.ndarray  # (n, m)
    longitude: np.ndarray
    incidence: np.ndarray

    @classmethod
    def from_points(cls, line, sample, latitude, longitude, incidence) -> TiePoints:
        """Arrange the 1-D tie points (any order) into a line x sample grid."""
        line, sample = np.asarray(line, float), np.asarray(sample, float)
        lines, samples = np.unique(np.round(line)), np.unique(np.round(sample))
        if len(lines) * len(samples) != len(line) or len(lines) < 2 or len(samples) < 2:
            raise ValueError(
                f"{len(line)} tie points do not form a line x sample grid "
                f"({len(lines)} distinct lines, {len(samples)} distinct samples)"
            )
        order = np.lexsort((sample, line))
        shape = (len(lines), len(samples))

        def grid(values):
            return np.asarray(values, dtype=np.float64)[order].reshape(shape)

        return cls(grid(line).mean(axis=1), grid(sample).mean(axis=0), grid(latitude), grid(longitude), grid(incidence))

    def incidence_at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Incidence angle (degrees) at 40 m pixel coordinates ``rows`` x ``cols``."""
        return interpolate_grid(self.incidence, self.lines, self.samples, rows, cols)


def block_mean(values: np.ndarray) -> np.ndarray:
    """2 x 2 mean of the finite pixels (NaN where none is); input has even shape."""
    h, w = values.shape[0] // 2, values.shape[1] // 2
    blocks = values[: 2 * h, : 2 * w].reshape(h, 2, w, 2)
    finite = np.isfinite(blocks)
    total = np.where(finite, blocks, 0).sum(axis=(1, 3), dtype=np.float64)
    count = finite.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def block_max(classes: np.ndarray) -> np.ndarray:
    """2 x 2 max of class rasters where -1 marks invalid pixels (-1 stays when all are)."""
    h, w = classes.shape[0] // 2, classes.shape[1] // 2
    return classes[: 2 * h, : 2 * w].reshape(h, 2, w, 2).max(axis=(1, 3))


def reduce_strip(
    hh_db: np.ndarray,
    hv_db: np.ndarray,
    incidence: np.ndarray,
    distance: np.ndarray,
    charts: dict[str, np.ndarray] | None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One strip of 40 m physical values -> 80 m z-scored inputs and uint8 charts.

    ``charts`` are int16 class rasters with -1 where no polygon lies (see
    :func:`eggcode.rasterise`); None for files without an ice chart.
    """
    invalid = ~np.isfinite(hh_db) | ~np.isfinite(hv_db) | (distance == 0)
    if charts is not None:
        invalid |= charts["SIC"] < 0
    physical = {
        "nersc_sar_primary": np.where(invalid, np.nan, hh_db),
        "nersc_sar_secondary": np.where(invalid, np.nan, hv_db),
        "sar_incidenceangle": np.where(invalid, np.nan, incidence),
    }
    sar = {}
    for name, values in physical.items():
        z = standard_scale(name, block_mean(values))
        sar[name] = np.where(np.isfinite(z), z, 0).astype(np.float32)
    sar["distance_map"] = standard_scale("distance_map", block_mean(distance.astype(np.float64)))
    out_charts = {}
    for name, classes in (charts or {}).items():
        reduced = block_max(np.where(invalid, -1, classes))
        out_charts[name] = np.where(reduced < 0, IGNORE_INDEX, reduced).astype(np.uint8)
    return sar, out_charts


def read_tie_points(ds, path: Path) -> TiePoints:
    values = [load_variable(ds, name, path, np.float64) for name in TIE_POINT_VARIABLES[:5]]
    try:
        return TiePoints.from_points(*values)
    except ValueError as err:
        raise SceneError(path, str(err), "the file's geolocation grid is damaged; download it again") from err


def read_polygon_charts(ds, path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Polygon ids of the code table and the decoded SIC/SOD/FLOE class of each polygon."""
    if POLYGON_CODES not in ds.variables:
        raise SceneError(
            path, f"has {POLYGON_VARIABLE} but no {POLYGON_CODES} table", "the file is incomplete; download it again"
        )
    try:
        table = parse_polygon_codes(load_variable(ds, POLYGON_CODES, path))
    except PolygonCodeError as err:
        raise SceneError(path, str(err), "the ice-chart code table is damaged; download it again") from err
    return table.poly_ids, decode_polygons(table)


def read_raw_scene(
    path: Path, name: SceneName, *, reference: str | Path | bool | None = True, min_size: tuple[int, int] | None = None
) -> Scene:
    """Read a raw 40 m file whose name says ``name`` and convert it to the 80 m ready-to-train
    representation."""
    with open_scene_file(path) as ds:
        check_layout(ds, path, RAW_LAYOUT, "raw")
        has_chart = POLYGON_VARIABLE in ds.variables
        if has_chart:
            check_layout(ds, path, {POLYGON_VARIABLE: SAR_DIMS}, "raw")
            poly_ids, poly_classes = read_polygon_charts(ds, path)
        tie = read_tie_points(ds, path)
        raw_shape = tuple(ds["nersc_sar_primary"].shape)
        shape = (raw_shape[0] // 2, raw_shape[1] // 2)
        if min(shape) < 1:
            raise SceneError(path, f"SAR grid {raw_shape} is too small", "leave this scene out")
        sar = {
            n: np.empty(shape, np.float32)
            for n in ("nersc_sar_primary", "nersc_sar_secondary", "sar_incidenceangle", "distance_map")
        }
        charts = {c: np.empty(shape, np.uint8) for c in CHART_NAMES} if has_chart else {}
        for start in range(0, 2 * shape[0], STRIP_LINES):
            stop = min(start + STRIP_LINES, 2 * shape[0])
            rows = (slice(start, stop), slice(0, 2 * shape[1]))
            strip_charts = None
            if has_chart:
                polygons = load_variable(ds, POLYGON_VARIABLE, path, np.float64, rows)
                strip_charts = {c: rasterise(polygons, poly_ids, poly_classes[c]) for c in CHART_NAMES}
            strip_sar, strip_out = reduce_strip(
                load_variable(ds, "nersc_sar_primary", path, np.float32, rows),
                load_variable(ds, "nersc_sar_secondary", path, np.float32, rows),
                tie.incidence_at(np.arange(start, stop), np.arange(2 * shape[1])),
                load_variable(ds, "distance_map", path, np.float32, rows),
                strip_charts,
            )
            out_rows = slice(start // 2, stop // 2)
            for key, values in strip_sar.items():
                sar[key][out_rows] = values
            for key, values in strip_out.items():
                charts[key][out_rows] = values
        coarse = {n: standard_scale(n, load_variable(ds, n, path, np.float64)) for n in COARSE_VARIABLES}
        attrs = dict(ds.attrs)
    content = SceneContent("raw", sar, coarse, tie.latitude, tie.longitude, charts, attrs)
    return build_scene(path, name, content, reference, min_size)
