"""Georeferencing from the scene's tie points: GCPs, pixel -> map coordinates, the warp method, CRS checks.

The ready-to-train files locate a scene by 21 x 21 latitude/longitude tie points spanning the 80 m grid
evenly from the centre of its first to the centre of its last line and sample (axis 0 along lines; as
:func:`~seaice_mlflow.tasks.autoice.grid.tie_point_values` reads them). Here they become GDAL ground
control points in EPSG:4326: pixel/line coordinates count from the outer corner of the first pixel, so
the tie point at line ``l`` and sample ``s`` is the GCP (row ``l + 0.5``, col ``s + 0.5``).

* Polygon vertices are located as the project reads the tie points everywhere: bilinear between them
  (``scipy.interpolate.RegularGridInterpolator``, exact at each tie point, linear past the outer ones).
* A warp to a map CRS takes the GCPs into that CRS first, where a scene's geometry is close to a plane,
  and lets GDAL fit its GCP polynomial there; when that fit misses a GCP by more than a quarter of an
  output pixel, GDAL's thin-plate spline (``GCP_TPS``, exact at every GCP) is used instead
  (:func:`warp_method`). For a 400 km scene in EPSG:3413 the polynomial misses by about 25 m, so the
  spline is used: about 10 s for the three charts of a 5000 x 5200 scene on 2 CPU cores (the polynomial
  1.5 s; the spline through the GCPs in EPSG:4326, where the scene is curved, over 40 s).

Longitudes are taken as given: a scene across the antimeridian is not handled (AI4Arctic's lie between
100 W and 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.transform import GCPTransformer
from rasterio.warp import transform as transform_points
from scipy.interpolate import RegularGridInterpolator

from seaice_mlflow.core.errors import ParameterError, first_line

#: The CRS of the tie points.
GEOGRAPHIC = CRS.from_epsg(4326)
#: GDAL transformer option of a warp through the thin-plate spline of the GCPs.
TPS = {"SRC_METHOD": "GCP_TPS"}
#: The largest miss of the GCP polynomial, in output pixels, before the thin-plate spline is used.
POLYNOMIAL_TOLERANCE = 0.25


def parse_crs(value: str) -> CRS | None:
    """``--crs`` as a CRS (None when empty); a :class:`ParameterError` naming the option when rasterio cannot
    read it or it is neither projected nor geographic."""
    value = value.strip()
    if not value:
        return None
    try:
        crs = CRS.from_user_input(value)
    except CRSError as err:
        raise ParameterError(
            "crs",
            f"{value!r} is not a coordinate reference system ({first_line(err)}); give an EPSG code such as "
            "EPSG:3413 (NSIDC polar stereographic north), or leave it empty for GCPs in EPSG:4326",
        ) from None
    if not (crs.is_projected or crs.is_geographic):
        raise ParameterError("crs", f"{value!r} is neither a projected nor a geographic CRS; give e.g. EPSG:3413")
    return crs


def crs_unit(crs: CRS) -> str:
    """The unit of a CRS's coordinates (``metre``, ``degree``, ...)."""
    return crs.units_factor[0]


def read_tie_points(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """Latitude and longitude tie points of a scene file (ready-to-train, test or raw), read alone; None for
    a file that is not a scene or cannot be read (charting reports it)."""
    from seaice_mlflow.core.errors import SeaIceError
    from seaice_mlflow.tasks.autoice.files.naming import PREP, RAW, parse_scene_name
    from seaice_mlflow.tasks.autoice.files.netcdf import load_variable, open_scene_file
    from seaice_mlflow.tasks.autoice.files.raw import TIE_POINT_VARIABLES
    from seaice_mlflow.tasks.autoice.files.variables import LATITUDE, LONGITUDE

    try:
        kind = parse_scene_name(path).file_kind
        names = {PREP: (LATITUDE, LONGITUDE), RAW: TIE_POINT_VARIABLES[2:4]}.get(kind)
        if names is None:
            return None
        with open_scene_file(path) as ds:
            latitude, longitude = (load_variable(ds, name, path, np.float64) for name in names)
    except (SeaIceError, KeyError):
        return None
    return latitude, longitude


def tie_point_extent(latitude: np.ndarray, longitude: np.ndarray, crs: CRS) -> tuple[float, float]:
    """Width and height (``crs`` units) of the north-up box around the tie points in ``crs``."""
    xs, ys = transform_points(GEOGRAPHIC, crs, np.ravel(longitude).tolist(), np.ravel(latitude).tolist())
    return float(np.ptp(xs)), float(np.ptp(ys))


def tie_point_positions(shape: tuple[int, int], grid_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """80 m line and sample coordinates (0 = centre of the first pixel) of the tie-point rows and columns."""
    return np.linspace(0, shape[0] - 1, grid_shape[0]), np.linspace(0, shape[1] - 1, grid_shape[1])


def tie_point_gcps(latitude: np.ndarray, longitude: np.ndarray, shape: tuple[int, int]) -> list[GroundControlPoint]:
    """The tie points of a scene of ``shape`` (lines, samples) as GCPs (x longitude, y latitude, EPSG:4326)."""
    latitude, longitude = np.asarray(latitude, dtype=np.float64), np.asarray(longitude, dtype=np.float64)
    lines, samples = tie_point_positions(shape, latitude.shape)
    return [
        GroundControlPoint(
            row=float(line) + 0.5,
            col=float(sample) + 0.5,
            x=float(longitude[i, j]),
            y=float(latitude[i, j]),
            z=0.0,  # GDAL reads a missing height as an unusable GCP list
            id=f"{i},{j}",
        )
        for i, line in enumerate(lines)
        for j, sample in enumerate(samples)
    ]


def pixel_to_crs(
    latitude: np.ndarray,
    longitude: np.ndarray,
    shape: tuple[int, int],
    cols: np.ndarray,
    rows: np.ndarray,
    crs: CRS | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel/line coordinates (0 = outer corner of the first pixel) of a scene of ``shape`` to x, y:
    longitude, latitude (bilinear between the tie points) or, with ``crs``, map coordinates."""
    positions = tie_point_positions(shape, np.shape(latitude))
    centred = np.column_stack([np.asarray(rows, dtype=np.float64) - 0.5, np.asarray(cols, dtype=np.float64) - 0.5])
    xs, ys = (
        RegularGridInterpolator(positions, np.asarray(grid, dtype=np.float64), bounds_error=False, fill_value=None)(
            centred
        )
        for grid in (longitude, latitude)
    )
    if crs is not None and crs != GEOGRAPHIC:
        xs, ys = (np.asarray(v, dtype=np.float64) for v in transform_points(GEOGRAPHIC, crs, xs, ys))
    return xs, ys


def map_gcps(gcps: list[GroundControlPoint], crs: CRS) -> list[GroundControlPoint]:
    """The GCPs with their x, y in ``crs``."""
    xs, ys = transform_points(GEOGRAPHIC, crs, [g.x for g in gcps], [g.y for g in gcps])
    return [GroundControlPoint(row=g.row, col=g.col, x=x, y=y, z=0.0, id=g.id) for g, x, y in zip(gcps, xs, ys)]


def polynomial_miss(gcps: list[GroundControlPoint]) -> float:
    """The largest distance (in the GCPs' units) between a GCP and GDAL's GCP polynomial at its pixel."""
    with GCPTransformer(gcps) as transformer:
        xs, ys = transformer.xy([g.row for g in gcps], [g.col for g in gcps], offset="ul")
    return float(np.max(np.hypot(np.subtract(xs, [g.x for g in gcps]), np.subtract(ys, [g.y for g in gcps]))))


def warp_method(gcps: list[GroundControlPoint], pixel_size: float) -> dict[str, str]:
    """GDAL transformer options of a warp through ``gcps`` (in the output CRS) to pixels of ``pixel_size``:
    none (the GCP polynomial) when it passes within a quarter pixel of every GCP, else the thin-plate spline."""
    return {} if polynomial_miss(gcps) <= POLYNOMIAL_TOLERANCE * pixel_size else dict(TPS)
