"""Vector charts: ``<scene_id>_charts.gpkg``, one polygon per connected region of equal (SIC, SOD, FLOE).

The three charts are combined into one code per pixel; regions (4-connected) smaller than ``min_pixels``
80 m pixels are merged into their largest neighbouring region (``rasterio.features.sieve``; a speck
with no neighbour but nodata stays), so a noisy prediction does not become thousands of one-pixel
polygons. Each region becomes a polygon (``rasterio.features.shapes``); the polygons are simplified
together as a coverage (``shapely.coverage_simplify``, tolerance in pixels), so neighbours keep a common
border without gaps or overlaps, then their vertices are taken from pixel coordinates to longitude and
latitude, bilinear between the tie points (:mod:`.georef`), or on to ``--crs``.

Attributes (:mod:`.sigrid`): the SIGRID-3 egg-code fields (``CT``, ``CA``, ``SA``, ``FA``, ...,
``POLY_TYPE``), each chart's class index and name, and ``PIXELS``, the region's 80 m pixels before
simplification. With uncertainty layers, each layer's mean over the polygon's pixels, in percent
(:data:`ATTRIBUTE_SUFFIXES`: ``SIC_conf``, ``SOD_conf``, ``FLOE_conf``, ``SOD_entr``, ``SIC_spread``,
``FLOE_disag``, ``SOD_uconf``; NaN where none of its pixels has a value). Every attribute name has at
most 10 characters, so an export to a Shapefile (``ogr2ogr -f "ESRI Shapefile"``; SIGRID-3 archives are
Shapefiles) keeps them whole (``SOD_entropy`` was cut to ``SOD_entrop``). The layer (``charts``) carries
the product's provenance, the SIGRID-3 codes written (``sigrid3_codes``, :func:`.sigrid.code_note`) and
what each layer attribute is (``attributes``) as GeoPackage metadata.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyogrio
import shapely
from rasterio import features
from rasterio.crs import CRS

from seaice_mlflow.core.io import atomic_path
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES, IGNORE_INDEX
from seaice_mlflow.tasks.autoice.gis.georef import GEOGRAPHIC, pixel_to_crs
from seaice_mlflow.tasks.autoice.gis.sigrid import code_note, sigrid_attributes
from seaice_mlflow.tasks.autoice.uncertainty_layers import FILL, ProductLayer

LAYER = "charts"
CONNECTIVITY = 4
#: The attribute of a layer's polygon means is ``<chart>_<suffix>``, at most 10 characters (Shapefile
#: field names); a spread is only made for a chart predicted as a value (SIC).
ATTRIBUTE_SUFFIXES = {"confidence": "conf", "entropy": "entr", "disagreement": "disag", "spread": "spread",
                      "confidence_uncalibrated": "uconf"}  # fmt: skip


@dataclass(frozen=True)
class Regions:
    """Polygons in pixel coordinates (x sample, y line, 0 = outer corner of the first pixel) and the
    classes of each (chart -> uint8 per polygon)."""

    polygons: np.ndarray  # shapely Polygons
    classes: dict[str, np.ndarray]

    @property
    def pixels(self) -> np.ndarray:
        """80 m pixels of each polygon (its area in pixel coordinates)."""
        return np.rint(shapely.area(self.polygons)).astype(np.int64)


def combined_codes(charts: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One int32 code per pixel for the (SIC, SOD, FLOE) classes, and the pixels where any chart has a class."""
    codes = np.zeros(charts[CHART_NAMES[0]].shape, dtype=np.int32)
    valid = np.zeros(codes.shape, dtype=bool)
    for chart in CHART_NAMES:
        values = np.asarray(charts[chart], dtype=np.uint8)
        codes = (codes << 8) | values
        valid |= values != IGNORE_INDEX
    return codes, valid


def split_codes(codes: np.ndarray) -> dict[str, np.ndarray]:
    """The classes of each chart in combined codes."""
    shifts = [8 * k for k in reversed(range(len(CHART_NAMES)))]
    return {c: ((np.asarray(codes, dtype=np.int64) >> s) & 0xFF).astype(np.uint8) for c, s in zip(CHART_NAMES, shifts)}


def chart_regions(charts: Mapping[str, np.ndarray], min_pixels: int = 16) -> Regions:
    """The connected regions of equal classes as polygons in pixel coordinates (not simplified)."""
    codes, valid = combined_codes(charts)
    if min_pixels > 1 and valid.any():
        codes = features.sieve(codes, min_pixels, connectivity=CONNECTIVITY, mask=valid)
    shapes = list(features.shapes(codes, mask=valid, connectivity=CONNECTIVITY))
    polygons = np.array([shapely.geometry.shape(geometry) for geometry, _ in shapes], dtype=object)
    values = np.array([int(value) for _, value in shapes], dtype=np.int64)
    return Regions(polygons, split_codes(values))


def layer_attribute(layer: ProductLayer) -> str:
    """The polygon attribute of a layer's means."""
    return f"{layer.chart}_{ATTRIBUTE_SUFFIXES[layer.kind]}"


def region_means(polygons: np.ndarray, shape: tuple[int, int], layers: Sequence[ProductLayer]) -> dict[str, np.ndarray]:
    """Per polygon (in pixel coordinates, not simplified), the mean of each layer over the pixels whose
    centre it holds and that have a value (float32 percent; NaN where none has), as polygon attributes."""
    if not layers:
        return {}
    labels = np.zeros(shape, np.int32)
    if len(polygons):
        features.rasterize(((p, i + 1) for i, p in enumerate(polygons)), out=labels)  # 0: no polygon
    means = {}
    for layer in layers:
        known = layer.values != FILL
        counts = np.bincount(labels[known], minlength=len(polygons) + 1)
        sums = np.bincount(labels[known], weights=layer.values[known], minlength=len(polygons) + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            means[layer_attribute(layer)] = (sums / counts)[1:].astype(np.float32)
    return means


def simplified(polygons: np.ndarray, tolerance: float) -> np.ndarray:
    """Polygons of a coverage simplified together (shared borders stay shared); ``tolerance`` 0: as given."""
    if tolerance <= 0 or len(polygons) == 0:
        return polygons
    return shapely.coverage_simplify(polygons, tolerance)


def to_map(
    polygons: np.ndarray,
    latitude: np.ndarray,
    longitude: np.ndarray,
    shape: tuple[int, int],
    crs: CRS | None = None,
) -> np.ndarray:
    """Polygons from pixel coordinates of a scene of ``shape`` to longitude/latitude (EPSG:4326) or
    ``crs``, vertex by vertex through its tie points."""
    if len(polygons) == 0:
        return polygons

    def transform(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(pixel_to_crs(latitude, longitude, shape, xy[:, 0], xy[:, 1], crs))

    return shapely.transform(polygons, transform)


def write_chart_polygons(
    path: str | Path,
    charts: Mapping[str, np.ndarray],
    latitude: np.ndarray,
    longitude: np.ndarray,
    metadata: Mapping[str, str],
    crs: CRS | None = None,
    simplify: float = 1.0,
    min_pixels: int = 16,
    layers: Sequence[ProductLayer] = (),
) -> Path:
    """Write the chart polygons with SIGRID-3 attributes (and the mean of each uncertainty layer) as a
    GeoPackage, atomically."""
    path = Path(path)
    regions = chart_regions(charts, min_pixels)
    shape = charts[CHART_NAMES[0]].shape
    polygons = to_map(simplified(regions.polygons, simplify), latitude, longitude, shape, crs)
    columns = {
        **sigrid_attributes(regions.classes),
        "PIXELS": regions.pixels,
        **region_means(regions.polygons, shape, layers),
    }
    described = "; ".join(f"{layer_attribute(layer)}: mean {layer.name} over the polygon (%)" for layer in layers)
    metadata = {**metadata, "sigrid3_codes": code_note(), **({"attributes": described} if layers else {})}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # the temporary name does not end in .gpkg; the renamed file does
        warnings.filterwarnings("ignore", message=".*extension.*")
        pyogrio.raw.write(
            str(tmp),
            shapely.to_wkb(polygons) if len(polygons) else np.array([], dtype=object),
            list(columns.values()),
            list(columns),
            layer=LAYER,
            driver="GPKG",
            geometry_type="Polygon",
            crs=(crs or GEOGRAPHIC).to_wkt(),
            layer_metadata=dict(metadata),
        )
    return path
