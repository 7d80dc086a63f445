"""GIS products of a charted scene, next to the CF netCDF one (:mod:`~seaice_mlflow.tasks.autoice.products`).

``seaice predict --format netcdf,geotiff,vector`` writes per scene:

* ``netcdf``: ``<scene_id>_charts.nc``, the CF chart product (the default);
* ``geotiff``: ``<scene_id>_<chart>.tif`` per chart (:mod:`.geotiff`), a Cloud Optimized GeoTIFF: uint8
  class indices with a colour table, class names and nodata 255, on the scene grid with the tie points
  as GCPs (EPSG:4326), or warped to a map grid when ``--crs`` is given;
* ``vector``: ``<scene_id>_charts.gpkg`` (:mod:`.polygons`): one polygon per connected region of equal
  (SIC, SOD, FLOE) classes with WMO SIGRID-3 codes (:mod:`.sigrid`), in EPSG:4326 or ``--crs``; attribute
  names of at most 10 characters, so a Shapefile export keeps them.

Both GIS products are georeferenced from the scene's 21 x 21 lat/lon tie points (:mod:`.georef`). This
module holds what the command line checks before any scene is charted; it imports no GDAL binding, the
writers do.

``--pixel-size`` (with ``--crs``) is checked against every scene before the model is loaded
(:func:`check_pixel_size`, which reads only the scenes' tie points): a size that leaves fewer than
:data:`MIN_PIXELS_ACROSS` pixels across a scene (``1e9`` m, or metres given to a CRS in degrees, wrote
1 x 1 GeoTIFFs with no valid pixel), or a grid whose rasters (the warped stack of the charts and layers,
and the copy the COG driver writes) would take more than the memory available (``0.01`` m ended in an
"out of memory" that blamed ``--tile``), is refused with the CRS's unit and the sizes that would do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.core.lists import split_values

#: Products ``seaice predict`` writes per scene (``--format``, a comma list).
ProductFormat = Literal["netcdf", "geotiff", "vector"]
PRODUCT_FORMATS: tuple[ProductFormat, ...] = get_args(ProductFormat)
#: The formats written by this package (georeferenced from the tie points).
GIS_FORMATS: tuple[ProductFormat, ...] = ("geotiff", "vector")
#: A warped GeoTIFF has at least this many pixels across a scene, each way.
MIN_PIXELS_ACROSS = 4
#: The most uncertainty layers of one chart: confidence, entropy and (an ensemble) disagreement, or spread.
MAX_LAYERS_PER_CHART = 3


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
    if options.pixel_size and not options.crs:
        raise ParameterError(
            "pixel_size",
            "applies to GeoTIFFs warped to a map grid: give --crs too (e.g. --crs EPSG:3413 for metres); "
            "without --crs they stay on the scene grid",
        )
    crs = parse_crs(options.crs)
    return GisOptions(crs.to_string() if crs else "", options.pixel_size, options.simplify, options.min_pixels)


def check_pixel_size(options: GisOptions, files: Iterable[Path], uncertainty: bool = False) -> None:
    """A :class:`ParameterError` naming ``--pixel-size``, the CRS's unit and the sizes that would do, when the
    warped grid of a scene in ``files`` would have fewer than :data:`MIN_PIXELS_ACROSS` pixels across or
    not fit in the memory available with its rasters (the charts and, with ``uncertainty``, up to
    :data:`MAX_LAYERS_PER_CHART` layers each). Nothing to check without ``crs`` or with ``pixel_size`` 0
    (about the scene's own 80 m); files that are not scenes or cannot be read are left to charting."""
    if not options.crs or options.pixel_size <= 0:
        return
    import psutil

    from seaice_mlflow.tasks.autoice.charts import CHART_NAMES
    from seaice_mlflow.tasks.autoice.gis.georef import crs_unit, parse_crs, read_tie_points, tie_point_extent

    crs, size = parse_crs(options.crs), options.pixel_size
    unit = crs_unit(crs)
    rasters = len(CHART_NAMES) * (1 + MAX_LAYERS_PER_CHART * uncertainty) + 1  # + the COG copy of one
    available = psutil.virtual_memory().available
    for path in files:
        tie_points = read_tie_points(Path(path))
        if tie_points is None:
            continue
        extent = tie_point_extent(*tie_points, crs)
        width, height = (max(1, math.ceil(e / size)) for e in extent)
        where = f"{size:g} {unit} gives {width} x {height} pixels over {Path(path).name} in {options.crs}"
        if min(width, height) < MIN_PIXELS_ACROSS:
            largest = min(extent) / MIN_PIXELS_ACROSS
            hint = f" ({options.crs} counts in {unit}, not metres)" if crs.is_geographic and size >= 1 else ""
            raise ParameterError(
                "pixel_size",
                f"{where}{hint}; give a size of at most {largest:.3g} {unit} ({MIN_PIXELS_ACROSS} pixels across "
                "the scene), or 0 for about the scene's own 80 m",
            )
        needed = width * height * rasters
        if needed > available:
            smallest = size * np.sqrt(needed / available)
            raise ParameterError(
                "pixel_size",
                f"{where}: {needed / 2**30:.1f} GiB for its {rasters} rasters, more than the "
                f"{available / 2**30:.1f} GiB of memory available; give a size of at least {smallest:.3g} {unit}, "
                "or 0 for about the scene's own 80 m",
            )


def geotiff_name(scene_id: str, chart: str) -> str:
    return f"{scene_id}_{chart}.tif"


def vector_name(scene_id: str) -> str:
    return f"{scene_id}_charts.gpkg"
