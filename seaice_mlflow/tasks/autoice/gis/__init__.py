"""GIS products of a charted scene, next to the CF netCDF one (:mod:`~seaice_mlflow.tasks.autoice.products`).

``seaice predict --format netcdf,geotiff,vector`` writes per scene:

* ``netcdf``: ``<scene_id>_charts.nc``, the CF chart product (the default);
* ``geotiff``: ``<scene_id>_<chart>.tif`` per chart (:mod:`.geotiff`): uint8 class indices with a colour
  table, class names and nodata 255, on the scene grid with the tie points as GCPs (EPSG:4326), or warped
  to a map grid when ``--crs`` is given;
* ``vector``: ``<scene_id>_charts.gpkg`` (:mod:`.polygons`): one polygon per connected region of equal
  (SIC, SOD, FLOE) classes with WMO SIGRID-3 codes (:mod:`.sigrid`), in EPSG:4326 or ``--crs``.

Both GIS products are georeferenced from the scene's 21 x 21 lat/lon tie points (:mod:`.georef`). This
module holds what the command line checks before any scene is charted; it imports no GDAL binding, the
writers do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.core.lists import split_values

#: Products ``seaice predict`` writes per scene (``--format``, a comma list).
ProductFormat = Literal["netcdf", "geotiff", "vector"]
PRODUCT_FORMATS: tuple[ProductFormat, ...] = get_args(ProductFormat)
#: The formats written by this package (georeferenced from the tie points).
GIS_FORMATS: tuple[ProductFormat, ...] = ("geotiff", "vector")


@dataclass(frozen=True)
class GisOptions:
    """How the GIS products are georeferenced and drawn.

    ``crs``: empty keeps GeoTIFFs on the scene grid with GCPs and polygons in EPSG:4326, else any CRS
    rasterio reads (``EPSG:3413``); ``pixel_size``: of the warped GeoTIFFs in ``crs`` units (0:
    rasterio's default, about the scene's 80 m); ``simplify``: tolerance of the polygon simplification
    in 80 m pixels (0: none); ``min_pixels``: regions smaller than this are merged into their largest
    neighbour before polygonising (0 or 1: none).
    """

    crs: str = ""
    pixel_size: float = 0.0
    simplify: float = 1.0
    min_pixels: int = 16


def parse_formats(values: str | Iterable[str]) -> tuple[ProductFormat, ...]:
    """``--format`` as product formats in canonical order; a :class:`ParameterError` for an unknown or no format."""
    given = [v.lower() for v in split_values(values)]
    unknown = [v for v in given if v not in PRODUCT_FORMATS]
    if unknown or not given:
        found = f"unknown format {', '.join(map(repr, unknown))}" if unknown else "no format given"
        raise ParameterError("format", f"{found}; give a comma list of {', '.join(PRODUCT_FORMATS)}")
    return tuple(f for f in PRODUCT_FORMATS if f in given)


def check_options(options: GisOptions) -> GisOptions:
    """``options`` with ``crs`` in its canonical form; a :class:`ParameterError` naming the option that is wrong."""
    from seaice_mlflow.tasks.autoice.gis.georef import parse_crs  # GDAL only when there is a CRS to read

    if not math.isfinite(options.pixel_size) or options.pixel_size < 0:
        raise ParameterError("pixel_size", f"{options.pixel_size} is not a size; give a positive number or 0")
    crs = parse_crs(options.crs)
    return GisOptions(crs.to_string() if crs else "", options.pixel_size, options.simplify, options.min_pixels)


def geotiff_name(scene_id: str, chart: str) -> str:
    return f"{scene_id}_{chart}.tif"


def vector_name(scene_id: str) -> str:
    return f"{scene_id}_charts.gpkg"
