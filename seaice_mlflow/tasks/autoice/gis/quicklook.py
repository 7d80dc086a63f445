"""Chart GeoTIFFs drawn in a map frame: class colours, a legend of the classes present, lon/lat axes.

A warped GeoTIFF is drawn on its own grid (its extent in its CRS); one on the scene grid (GCPs only) is
first warped to longitude/latitude as :mod:`.geotiff` warps. In a projected CRS (e.g. EPSG:3413) the
meridians and parallels are drawn as a graticule and labelled where they leave the frame (bottom and
left), so the axes read in degrees like a geographic map's. Built with matplotlib's object API and
the colours and legend of :mod:`~seaice_mlflow.tasks.autoice.plots`, as every chart figure of the project.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from rasterio.crs import CRS
from rasterio.warp import transform as transform_points
from rasterio.warp import transform_bounds

from seaice_mlflow.tasks.autoice.charts import CHARTS, IGNORE_INDEX
from seaice_mlflow.tasks.autoice.gis.georef import GEOGRAPHIC
from seaice_mlflow.tasks.autoice.gis.geotiff import warp_charts
from seaice_mlflow.tasks.autoice.plots import chart_colormap, class_legend

#: Behind the charts, where they have no data.
NO_DATA_COLOUR = "0.9"


@dataclass(frozen=True)
class MapChart:
    """One chart on a north-up map grid."""

    chart: str
    values: np.ndarray  # uint8 class indices, 255 = nodata
    transform: Affine
    crs: CRS
    class_names: tuple[str, ...]
    scene_id: str = ""


def map_extent(chart: MapChart) -> tuple[float, float, float, float]:
    """(left, right, bottom, top) of a north-up chart grid, as ``imshow`` takes it."""
    left, top = chart.transform @ (0, 0)
    right, bottom = chart.transform @ chart.values.shape[::-1]
    return left, right, bottom, top


def read_map_chart(path: str | Path) -> MapChart:
    """A chart GeoTIFF on its map grid, warped to longitude/latitude first when it has GCPs only."""
    with rasterio.open(path) as src:
        tags, band = src.tags(), src.tags(1)
        values = src.read(1)
        gcps, gcp_crs = src.gcps
        crs, transform = src.crs, src.transform
    chart = band.get("CHART", "")
    names = tuple(json.loads(band["CLASS_NAMES"])) if "CLASS_NAMES" in band else CHARTS[chart].class_names
    if gcps:  # the scene grid: warp it for the map
        warped, transform = warp_charts(values[None], gcps, gcp_crs or GEOGRAPHIC)
        values, crs = warped[0], gcp_crs or GEOGRAPHIC
    return MapChart(chart, values, transform, crs, names, tags.get("scene_id", ""))


def _degrees(value: float, positive: str, negative: str) -> str:
    return f"{abs(value):g}°{positive if value >= 0 else negative}"


def _line(crs: CRS, fixed: str, value: float, span: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """A meridian (``fixed="lon"``) or parallel at ``value`` over ``span`` degrees of the other one, in ``crs``."""
    along = np.linspace(span[0], span[1], 400)
    lons, lats = (np.full_like(along, value), along) if fixed == "lon" else (along, np.full_like(along, value))
    xs, ys = transform_points(GEOGRAPHIC, crs, lons, lats)
    return np.asarray(xs), np.asarray(ys)


def _edge_crossing(xs: np.ndarray, ys: np.ndarray, fixed: str, extent: tuple[float, ...]) -> float | None:
    """Where a meridian crosses the bottom edge of ``extent`` (left, right, bottom, top), or a parallel the
    left edge: the x (or y) of the first crossing inside the frame, None when it does not cross."""
    left, right, bottom, top = extent
    edge, other, low, high = (ys - bottom, xs, left, right) if fixed == "lon" else (xs - left, ys, bottom, top)
    for k in np.flatnonzero(np.sign(edge[:-1]) != np.sign(edge[1:])):
        position = other[k] + edge[k] / (edge[k] - edge[k + 1]) * (other[k + 1] - other[k])
        if low <= position <= high:
            return float(position)
    return None


def draw_graticule(ax, crs: CRS, extent: tuple[float, float, float, float]) -> None:
    """Meridians and parallels over a projected map, labelled in degrees on the bottom and left axes."""
    left, right, bottom, top = extent
    lon0, lat0, lon1, lat1 = transform_bounds(crs, GEOGRAPHIC, left, bottom, right, top, densify_pts=51)
    spans = {"lon": (2 * lat0 - lat1, 2 * lat1 - lat0), "lat": (2 * lon0 - lon1, 2 * lon1 - lon0)}
    ticks = {"lon": ([], []), "lat": ([], [])}
    for fixed, low, high in (("lon", lon0, lon1), ("lat", lat0, lat1)):
        for value in MaxNLocator(5).tick_values(low, high):
            xs, ys = _line(crs, fixed, float(value), spans[fixed])
            ax.plot(xs, ys, color="0.4", linewidth=0.5, linestyle=":", zorder=3)
            position = _edge_crossing(xs, ys, fixed, extent)
            if position is not None:
                ticks[fixed][0].append(position)
                ticks[fixed][1].append(_degrees(float(value), *("EW" if fixed == "lon" else "NS")))
    ax.set_xticks(*ticks["lon"])
    ax.set_yticks(*ticks["lat"])
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)


def draw_map_chart(ax, chart: MapChart, title: str = "") -> None:
    """One chart in a map frame: classes in their colours (no data light grey), lon/lat axes, a legend."""
    cmap, norm = chart_colormap(chart.chart)
    extent = map_extent(chart)
    ax.set_facecolor(NO_DATA_COLOUR)
    ax.imshow(
        np.ma.masked_equal(chart.values, IGNORE_INDEX), cmap=cmap, norm=norm, extent=extent, interpolation="nearest"
    )
    if chart.crs.is_geographic:
        ax.set_aspect(1 / np.cos(np.deg2rad((extent[2] + extent[3]) / 2)))
        ax.set_xlabel("longitude (°E)")
        ax.set_ylabel("latitude (°N)")
    else:
        draw_graticule(ax, chart.crs, extent)
        ax.set_aspect("equal")
        ax.set_xlabel(f"longitude (meridians on the {chart.crs.to_string()} grid)")
        ax.set_ylabel("latitude (parallels)")
    ax.tick_params(labelsize=7)
    class_legend(ax, chart.chart, [chart.values], NO_DATA_COLOUR, chart.class_names, bbox_to_anchor=(0.5, -0.12))
    ax.set_title(title or f"{chart.chart}: {CHARTS[chart.chart].long_name}", fontsize=9)


def map_figure(paths: Sequence[str | Path], title: str = "") -> Figure:
    """Chart GeoTIFFs (one or more) side by side in map frames (:func:`draw_map_chart`)."""
    charts = [read_map_chart(p) for p in paths]
    if not charts:
        raise ValueError("no GeoTIFF to draw")
    figure = Figure(figsize=(4.6 * len(charts), 5.4), layout="constrained")
    axes = figure.subplots(1, len(charts), squeeze=False)[0]
    for ax, chart in zip(axes, charts):
        draw_map_chart(ax, chart)
    figure.suptitle(title or f"Sea-ice charts of {charts[0].scene_id} ({charts[0].crs.to_string()})")
    return figure
