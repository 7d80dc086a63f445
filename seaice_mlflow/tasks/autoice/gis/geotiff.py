"""GeoTIFF per chart: ``<scene_id>_<chart>.tif``, uint8 class indices georeferenced from the tie points;
and per uncertainty layer: ``<scene_id>_<layer>.tif``, uint8 percent, georeferenced alike.

Each file holds one band of AutoICE class indices (as in the netCDF product), nodata 255 where the
scene has no SAR data, a colour table with the chart's WMO colours (:data:`~seaice_mlflow.tasks.autoice.charts.CHARTS`;
nodata transparent), the band description and, as band tags, ``CLASS_NAMES`` (a JSON list, index =
class value), CF-style ``FLAG_VALUES`` / ``FLAG_MEANINGS`` and ``NODATA_MEANING``; the dataset tags carry
the product's provenance (scene id, model, software version, MLflow run). Each file is a Cloud Optimized
GeoTIFF (GDAL's COG driver: 256 px deflate tiles, nearest-neighbour overviews down to one tile, the IFDs
and overviews before the full-resolution tiles), so ``rio cogeo validate`` accepts it and a client reads
any window or zoom level with range requests; a GTiff with overviews added after its data (as written
before) is not one. The three GCP charts of a synthetic 5000 x 5200 scene took 7.0 s to write against
6.2 s as plain tiled GTiffs (same size, 0.9-1.0 MB). A layer's file has no colour table; its band tags are ``LAYER``,
``UNITS`` (%), ``COMMENT`` and ``NODATA_MEANING``
(:mod:`~seaice_mlflow.tasks.autoice.uncertainty_layers`).

Without a CRS the file keeps the scene grid and carries the 21 x 21 tie points as GCPs in EPSG:4326
(:mod:`.georef`), which GIS software warps on display. With one, the charts are warped to a map grid in
that CRS with nearest resampling (``rasterio.warp.reproject`` through the GCPs taken into that CRS;
:func:`~seaice_mlflow.tasks.autoice.gis.georef.warp_method`), at ``pixel_size`` or, for 0, the resolution
rasterio proposes (about the scene's 80 m).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from matplotlib.colors import to_rgb
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject

from seaice_mlflow.core.io import atomic_path
from seaice_mlflow.tasks.autoice.charts import CHARTS, IGNORE_INDEX
from seaice_mlflow.tasks.autoice.gis.georef import GEOGRAPHIC, map_gcps, warp_method
from seaice_mlflow.tasks.autoice.uncertainty_layers import ProductLayer

NODATA = IGNORE_INDEX
NODATA_MEANING = f"{NODATA}: no SAR data (outside the swath or land)"
BLOCK = 256


def colour_table(chart: str) -> dict[int, tuple[int, int, int, int]]:
    """RGBA entry of each class of ``chart`` (its quicklook colours) and a transparent nodata entry."""
    table = {k: (*(round(255 * c) for c in to_rgb(colour)), 255) for k, colour in enumerate(CHARTS[chart].colours)}
    return {**table, NODATA: (255, 255, 255, 0)}


def band_tags(chart: str) -> dict[str, str]:
    """Band tags naming the classes of ``chart`` (a GeoTIFF has no other place for them)."""
    info = CHARTS[chart]
    return {
        "CHART": chart,
        "CLASS_NAMES": json.dumps(list(info.class_names)),
        "FLAG_VALUES": " ".join(map(str, info.flag_values)),
        "FLAG_MEANINGS": info.flag_meanings,
        "NODATA_MEANING": NODATA_MEANING,
    }


@dataclass(frozen=True)
class Band:
    """How a GeoTIFF describes its one band: description, band tags and, for a chart, its colour table."""

    description: str
    tags: Mapping[str, str] = field(default_factory=dict)
    colours: Mapping[int, tuple[int, int, int, int]] | None = None


def chart_band(chart: str) -> Band:
    """The band of a chart: class names, flags and WMO colours."""
    return Band(f"{chart}: {CHARTS[chart].long_name} (AutoICE class index)", band_tags(chart), colour_table(chart))


def layer_band(layer: ProductLayer) -> Band:
    """The band of an uncertainty layer: what it is, in percent."""
    tags = {"LAYER": layer.name, "UNITS": "%", "COMMENT": layer.comment, "NODATA_MEANING": NODATA_MEANING}
    return Band(f"{layer.name}: {layer.long_name} (%)", tags)


def warp_charts(
    stack: np.ndarray, gcps: list[GroundControlPoint], crs: CRS, pixel_size: float = 0.0
) -> tuple[np.ndarray, Affine]:
    """Charts (n, lines, samples) uint8 warped to a north-up grid in ``crs`` (nearest, nodata 255), through
    the GCPs taken into ``crs`` (:func:`~seaice_mlflow.tasks.autoice.gis.georef.warp_method`)."""
    _, height, width = stack.shape
    projected = map_gcps(gcps, crs)
    transform, out_width, out_height = calculate_default_transform(
        crs, crs, width, height, gcps=projected, resolution=pixel_size or None
    )
    warped = np.full((stack.shape[0], out_height, out_width), NODATA, dtype=np.uint8)
    reproject(
        stack,
        warped,
        gcps=projected,
        src_crs=crs,
        src_nodata=NODATA,
        dst_transform=transform,
        dst_crs=crs,
        dst_nodata=NODATA,
        resampling=Resampling.nearest,
        **warp_method(projected, min(abs(transform.a), abs(transform.e))),
    )
    return warped, transform


def write_geotiff(
    path: str | Path,
    band: Band,
    values: np.ndarray,
    tags: Mapping[str, str],
    gcps: list[GroundControlPoint] | None = None,
    crs: CRS | None = None,
    transform: Affine | None = None,
) -> Path:
    """Write one chart or layer (uint8, 255 = nodata) as ``band`` atomically, a Cloud Optimized GeoTIFF: on
    the scene grid with ``gcps``, or on a map grid (``crs``, ``transform``)."""
    path = Path(path)
    height, width = values.shape
    profile: dict[str, object] = {
        "driver": "COG",  # rasterio writes it to memory, then GDAL's COG driver copies it with its overviews
        "width": width,
        "height": height,
        "count": 1,
        "dtype": "uint8",
        "nodata": NODATA,
        "compress": "deflate",
        "blocksize": BLOCK,
        "overview_resampling": "nearest",
    }
    if crs is None:
        profile.update(gcps=gcps, crs=GEOGRAPHIC)
    else:
        profile.update(crs=crs, transform=transform)
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(values, 1)
        if band.colours is not None:
            dst.write_colormap(1, band.colours)
        dst.set_band_description(1, band.description)
        dst.update_tags(**tags)
        dst.update_tags(1, **band.tags)
    return path


def write_geotiffs(
    paths: Mapping[str, Path],
    rasters: Mapping[str, np.ndarray],
    bands: Mapping[str, Band],
    gcps: list[GroundControlPoint],
    tags: Mapping[str, str],
    crs: CRS | None = None,
    pixel_size: float = 0.0,
) -> list[Path]:
    """One GeoTIFF per name of ``paths`` (name -> file) of its raster (uint8, 255 = nodata) described by
    its band: GCPs only, or warped to ``crs`` once for all."""
    names = list(paths)
    if crs is None:
        return [write_geotiff(paths[n], bands[n], rasters[n], tags, gcps=gcps) for n in names]
    warped, transform = warp_charts(np.stack([rasters[n] for n in names]), gcps, crs, pixel_size)
    return [
        write_geotiff(paths[n], bands[n], values, tags, crs=crs, transform=transform)
        for n, values in zip(names, warped)
    ]
