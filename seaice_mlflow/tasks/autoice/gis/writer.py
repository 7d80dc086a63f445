"""The GIS products of one scene in the formats asked (the hook of
:func:`~seaice_mlflow.tasks.autoice.products.write_products`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from seaice_mlflow.tasks.autoice.charts import CHART_NAMES
from seaice_mlflow.tasks.autoice.gis import GisOptions, ProductFormat, geotiff_name, vector_name
from seaice_mlflow.tasks.autoice.gis.georef import parse_crs, tie_point_gcps
from seaice_mlflow.tasks.autoice.gis.geotiff import chart_band, layer_band, write_geotiffs
from seaice_mlflow.tasks.autoice.gis.polygons import write_chart_polygons
from seaice_mlflow.tasks.autoice.uncertainty_layers import ProductLayer

#: Tag of a GeoTIFF on the scene grid: how to put it on a map.
GCP_NOTE = "21 x 21 lat/lon tie points as GCPs (EPSG:4326); warp with a thin-plate spline (gdalwarp -tps)"


def write_gis_products(
    folder: str | Path,
    scene_id: str,
    charts: Mapping[str, np.ndarray],
    latitude: np.ndarray,
    longitude: np.ndarray,
    formats: Sequence[ProductFormat],
    options: GisOptions = GisOptions(),
    attributes: Mapping[str, object] | None = None,
    layers: Sequence[ProductLayer] = (),
) -> list[Path]:
    """``<scene_id>_<chart>.tif`` per chart and ``<scene_id>_<layer>.tif`` per uncertainty layer
    (``geotiff``) and ``<scene_id>_charts.gpkg`` (``vector``, with each layer's mean per polygon) of
    ``charts`` (uint8, 255 = no data) located by the scene's tie points; ``attributes`` (the product's
    provenance) become tags and layer metadata. Returns the files written."""
    folder = Path(folder)
    crs = parse_crs(options.crs)
    gcps = tie_point_gcps(latitude, longitude, charts[CHART_NAMES[0]].shape)
    tags = {k: str(v) for k, v in (attributes or {}).items() if k != "Conventions"}
    written: list[Path] = []
    if "geotiff" in formats:
        names = [*CHART_NAMES, *(layer.name for layer in layers)]
        paths = {name: folder / geotiff_name(scene_id, name) for name in names}
        rasters = {**charts, **{layer.name: layer.values for layer in layers}}
        bands = {**{c: chart_band(c) for c in CHART_NAMES}, **{layer.name: layer_band(layer) for layer in layers}}
        extra = {} if crs else {"GEOREFERENCING": GCP_NOTE}
        written += write_geotiffs(paths, rasters, bands, gcps, {**tags, **extra}, crs, options.pixel_size)
    if "vector" in formats:
        written.append(
            write_chart_polygons(
                folder / vector_name(scene_id),
                charts,
                latitude,
                longitude,
                tags,
                crs,
                options.simplify,
                options.min_pixels,
                layers,
            )
        )
    return written
