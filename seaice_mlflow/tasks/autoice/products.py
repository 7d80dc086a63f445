"""The chart product of a scene: ``<scene_id>_charts.nc`` (CF-1.9 netCDF-4: the first CF version with
unsigned types); its quicklook shows the same charts (:class:`~seaice_mlflow.tasks.autoice.charting.QuicklookSink`).

Variables, on the scene's 80 m grid (dims ``sar_lines``, ``sar_samples``):

* ``SIC``, ``SOD``, ``FLOE``: uint8 class indices as the AutoICE challenge numbers them, with CF
  ``flag_values``/``flag_meanings`` and ``long_name``; ``_FillValue`` 255 where the scene has no
  SAR data (outside the swath, land). xarray's default decoding turns 255 into NaN; open with
  ``mask_and_scale=False`` to keep the uint8 codes.
* ``latitude``, ``longitude``: float32 position of every pixel centre, bilinear between the tie points
  (as the project reads them everywhere, :func:`~seaice_mlflow.tasks.autoice.grid.tie_point_field`),
  named in each data variable's CF ``coordinates`` (with the scalar ``time``, the Sentinel-1 start) and
  its ``grid_mapping`` ``crs`` (WGS 84 latitude/longitude). This is what GDAL, and so QGIS, read as
  geolocation arrays: ``gdalwarp -geoloc`` or rasterio's ``WarpedVRT`` place the charts. Neither reads
  the tie points alone (GDAL takes a coarser lat/lon grid as the first pixels' positions, and CF-1.9
  coordinate subsampling needs tie points at whole pixels, which these are not). Measured on a synthetic
  5000 x 5200 scene (2-core VM): the product grew from 1.2 to 10.0 MB and took 5.8 s to write instead of
  1.6 s (zlib level 1; level 4 saves 1.6 MB for 2.4 s more), peak RSS +0.24 GiB.
* ``sar_grid2d_latitude``, ``sar_grid2d_longitude``: the scene's 21 x 21 geolocation tie points on the
  axes ``sar_grid2d_line`` and ``sar_grid2d_sample``, CF coordinate variables holding the 80 m line and
  sample (0 = centre of the first pixel) of each tie-point row and column. (The input files call the
  axis along lines ``sar_sample_2dgrid_points``; the product names each axis for what it counts.)
* with probabilities: ``<chart>_probability`` uint8 percent (0-100, rounded, so a pixel's
  classes sum to 100 +- a few), dims (``<chart>_class``, ``sar_lines``, ``sar_samples``), for
  every classified chart; a SIC regression model (or an ensemble with one) gives ``SIC_value``
  instead: float32 concentration in percent (10 x the class index as a continuous value, NaN
  outside the swath).
* with uncertainty layers (``--uncertainty``): ``<chart>_confidence``, ``<chart>_entropy``, for an
  ensemble ``<chart>_disagreement`` and for a regressed SIC ``SIC_spread`` (in percent concentration),
  each uint8 percent (0-100) with ``_FillValue`` 255 outside the swath
  (:mod:`~seaice_mlflow.tasks.autoice.uncertainty_layers`); every product of the scene names them in
  its ``uncertainty_layers`` attribute (what a re-run checks, :mod:`~seaice_mlflow.tasks.autoice.rerun`).

Global attributes record provenance: model URI(s) as given and as loaded (logged model id,
source run, registered name and version), the source scene file, the software version, the
MLflow run, the tiling, the creation time and ``Conventions = "CF-1.9"``; ACDD ``geospatial_*``
attributes give the scene's latitude/longitude extent and outline (WKT, EPSG:4326), and
``time_coverage_start``/``time_coverage_end`` the Sentinel-1 acquisition (the start and stop times of the
original file's name; the start alone when no raw name is known).

:func:`write_products` writes a scene's products in the formats asked: this netCDF file and the GIS
ones (GeoTIFFs, polygons: :mod:`~seaice_mlflow.tasks.autoice.gis`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xarray as xr

from seaice_mlflow import __version__
from seaice_mlflow.core.engine import ChartPrediction
from seaice_mlflow.core.io import atomic_path
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES, CHARTS, IGNORE_INDEX
from seaice_mlflow.tasks.autoice.files.naming import RAW_PATTERN, TIME_FORMAT
from seaice_mlflow.tasks.autoice.files.variables import LATITUDE, LONGITUDE, SAR_DIMS
from seaice_mlflow.tasks.autoice.gis import GIS_FORMATS, GisOptions, ProductFormat
from seaice_mlflow.tasks.autoice.grid import tie_point_field
from seaice_mlflow.tasks.autoice.scene import Scene
from seaice_mlflow.tasks.autoice.uncertainty_layers import LAYERS_ATTRIBUTE, ProductLayer, product_layers

CONVENTIONS = "CF-1.9"
FILL = IGNORE_INDEX
#: Tie-point line and sample coordinate variables (the axes of the tie-point latitude and longitude).
TIE_POINT_LINE, TIE_POINT_SAMPLE = "sar_grid2d_line", "sar_grid2d_sample"
#: Pixel positions, the acquisition time and the grid mapping of every variable on the scene grid.
PIXEL_LATITUDE, PIXEL_LONGITUDE, TIME, GRID_MAPPING = "latitude", "longitude", "time", "crs"
TIME_UNITS = "seconds since 1970-01-01 00:00:00"
#: EPSG:4326 as WKT (``crs_wkt`` of the grid mapping: GDAL then reads the CRS as EPSG:4326, not an unnamed
#: datum on the WGS 84 ellipsoid); written out so that this module imports no GDAL binding.
GEOGRAPHIC_WKT = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],'
    'AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,'
    'AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]'
)
ACDD_TIME = "%Y-%m-%dT%H:%M:%SZ"


def product_name(scene_id: str) -> str:
    return f"{scene_id}_charts.nc"


def quicklook_name(scene_id: str) -> str:
    return f"{scene_id}_charts.png"


def masked(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A chart as uint8 class indices, 255 where the scene has no SAR data."""
    return np.where(valid, values, FILL).astype(np.uint8)


def chart_variable(chart: str, values: np.ndarray, valid: np.ndarray) -> xr.DataArray:
    """One chart as uint8 class indices, 255 where the scene has no SAR data."""
    info = CHARTS[chart]
    return xr.DataArray(
        masked(values, valid),
        dims=SAR_DIMS,
        attrs={
            "long_name": f"{info.long_name} (AutoICE class index)",
            "flag_values": np.array(info.flag_values, dtype=np.uint8),
            "flag_meanings": info.flag_meanings,
            "valid_range": np.array([0, info.n_classes - 1], dtype=np.uint8),
            "coverage_content_type": "modelResult",
            "comment": f"{FILL}: no SAR data (outside the swath or land)",
        },
    )


def score_variables(chart: str, scores: np.ndarray, valid: np.ndarray, sic_value: bool) -> dict[str, xr.DataArray]:
    """``<chart>_probability`` (uint8 percent) or, for a regressed SIC, ``SIC_value`` (float32 %)."""
    if chart == "SIC" and sic_value:
        value = np.clip(scores[0] * 10.0, 0.0, 100.0).astype(np.float32)
        return {
            "SIC_value": xr.DataArray(
                np.where(valid, value, np.float32(np.nan)),
                dims=SAR_DIMS,
                attrs={
                    "long_name": "sea ice concentration predicted as a continuous value (10 x the SIC class index)",
                    "units": "%",
                    "valid_range": np.array([0, 100], dtype=np.float32),
                    "coverage_content_type": "modelResult",
                },
            )
        }
    info = CHARTS[chart]
    percent = np.rint(np.clip(scores, 0.0, 1.0) * 100).astype(np.uint8)
    percent[:, ~valid] = FILL
    dim = f"{chart}_class"
    return {
        f"{chart}_probability": xr.DataArray(
            percent,
            dims=(dim, *SAR_DIMS),
            attrs={
                "long_name": f"probability of each {info.long_name} class",
                "units": "%",
                "valid_range": np.array([0, 100], dtype=np.uint8),
                "coverage_content_type": "modelResult",
                "comment": f"rounded to whole percent (a pixel's classes sum to 100 +- a few); {FILL}: no SAR data",
            },
        ),
        dim: xr.DataArray(
            np.arange(info.n_classes, dtype=np.uint8),
            dims=(dim,),
            attrs={
                "long_name": f"{info.long_name} class index",
                "flag_values": np.array(info.flag_values, dtype=np.uint8),
                "flag_meanings": info.flag_meanings,
            },
        ),
    }


def layer_variable(layer: ProductLayer) -> xr.DataArray:
    """One uncertainty layer: uint8 percent, 255 where the scene has no SAR data."""
    return xr.DataArray(
        layer.values,
        dims=SAR_DIMS,
        attrs={
            "long_name": layer.long_name,
            "units": "%",
            "valid_range": np.array([0, 100], dtype=np.uint8),
            "coverage_content_type": "qualityInformation",
            "comment": f"{layer.comment}; rounded to whole percent; {FILL}: no SAR data",
        },
    )


def tie_point_coordinates(scene: Scene) -> dict[str, xr.DataArray]:
    """The 80 m line and sample of the tie-point rows and columns (they span the scene evenly)."""
    grid = np.shape(scene.latitude)
    return {
        name: xr.DataArray(
            np.linspace(0, size - 1, n, dtype=np.float64),
            dims=(name,),
            attrs={
                "long_name": f"{kind} coordinate of the tie points on the 80 m grid ({axis}); 0 is the centre of "
                f"the first {kind}",
                "units": "1",
            },
        )
        for name, size, n, kind, axis in (
            (TIE_POINT_LINE, scene.shape[0], grid[0], "line", f"index along {SAR_DIMS[0]}"),
            (TIE_POINT_SAMPLE, scene.shape[1], grid[1], "sample", f"index along {SAR_DIMS[1]}"),
        )
    }


def acquisition_times(scene: Scene) -> tuple[datetime, datetime]:
    """Start and stop of the scene's Sentinel-1 acquisition: from the original (raw) file name when the
    scene names one, else its start time twice."""
    original = str(scene.attrs.get("original_id", "")) or Path(scene.source).name
    match = RAW_PATTERN.match(original)
    stop = datetime.strptime(match["stop"], TIME_FORMAT) if match else scene.date
    return scene.date, max(stop, scene.date)


def location_variables(scene: Scene) -> dict[str, xr.DataArray]:
    """``latitude``/``longitude`` of every pixel centre (float32, bilinear between the tie points), the scalar
    ``time`` (acquisition start) and the grid mapping ``crs``: what locates each variable on the scene grid."""
    grid_mapping = {
        "grid_mapping_name": "latitude_longitude",
        "semi_major_axis": 6378137.0,
        "inverse_flattening": 298.257223563,
        "longitude_of_prime_meridian": 0.0,
        "crs_wkt": GEOGRAPHIC_WKT,
        "long_name": "WGS 84 (EPSG:4326) of the latitude and longitude",
    }
    out = {
        GRID_MAPPING: xr.DataArray(np.int32(0), attrs=grid_mapping),
        TIME: xr.DataArray(
            np.float64((scene.date.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()),
            attrs={
                "standard_name": "time",
                "long_name": "Sentinel-1 start time of the scene",
                "units": TIME_UNITS,
                "calendar": "standard",
                "axis": "T",
            },
        ),  # fmt: skip
    }
    for name, grid, unit in ((PIXEL_LATITUDE, scene.latitude, "degrees_north"),
                             (PIXEL_LONGITUDE, scene.longitude, "degrees_east")):  # fmt: skip
        out[name] = xr.DataArray(
            tie_point_field(np.asarray(grid, dtype=np.float64), scene.shape).astype(np.float32),
            dims=SAR_DIMS,
            attrs={
                "standard_name": name,
                "units": unit,
                "long_name": f"{name} of each pixel centre",
                "comment": f"bilinear between the tie points {LATITUDE}, {LONGITUDE}",
            },
        )
    return out


def geospatial_attributes(latitude: np.ndarray, longitude: np.ndarray) -> dict[str, object]:
    """ACDD extent of the scene: latitude/longitude bounds and the tie-point outline as a WKT polygon."""
    lat, lon = np.asarray(latitude, dtype=np.float64), np.asarray(longitude, dtype=np.float64)
    ring = [(0, j) for j in range(lat.shape[1])] + [(i, -1) for i in range(1, lat.shape[0])]
    ring += [(-1, j) for j in range(lat.shape[1] - 2, -1, -1)] + [(i, 0) for i in range(lat.shape[0] - 2, -1, -1)]
    outline = ", ".join(f"{lon[i, j]:.5f} {lat[i, j]:.5f}" for i, j in ring)
    return {
        "geospatial_lat_min": float(lat.min()),
        "geospatial_lat_max": float(lat.max()),
        "geospatial_lon_min": float(lon.min()),
        "geospatial_lon_max": float(lon.max()),
        "geospatial_lat_units": "degrees_north",
        "geospatial_lon_units": "degrees_east",
        "geospatial_bounds": f"POLYGON (({outline}))",
        "geospatial_bounds_crs": "EPSG:4326",
    }


def product_attributes(scene: Scene, provenance: Mapping[str, object]) -> dict[str, object]:
    """Global attributes of a scene's products: title, conventions, source, software, creation, extent in
    space and time, provenance."""
    created = datetime.now(UTC).strftime(ACDD_TIME)
    start, stop = acquisition_times(scene)
    return {
        "title": f"Sea-ice charts (SIC, SOD, FLOE) of Sentinel-1 scene {scene.scene_id}",
        "Conventions": CONVENTIONS,
        "scene_id": scene.scene_id,
        "source_scene_file": Path(scene.source).name,
        "source": f"seaice_mlflow {__version__} predicted from {Path(scene.source).name}",
        "software": "seaice_mlflow",
        "software_version": __version__,
        "date_created": created,
        "history": f"{created} seaice predict",
        **geospatial_attributes(scene.latitude, scene.longitude),
        "time_coverage_start": start.strftime(ACDD_TIME),
        "time_coverage_end": stop.strftime(ACDD_TIME),
        **{k: _attr(v) for k, v in provenance.items() if v is not None},
    }


def on_scene_grid(var: xr.Variable) -> bool:
    """A data variable on the scene grid: (lines, samples) or (classes, lines, samples)."""
    return var.dims == SAR_DIMS or (len(var.dims) == 3 and var.dims[1:] == SAR_DIMS)


def chart_dataset(
    scene: Scene,
    prediction: ChartPrediction,
    provenance: Mapping[str, object],
    sic_value: bool = True,
    attrs: Mapping[str, object] | None = None,
    layers: Sequence[ProductLayer] | None = None,
) -> xr.Dataset:
    """The product of ``scene``: charts (and scores, uncertainty layers, when ``prediction`` has them)
    on its grid; ``attrs``: the global attributes, ``layers``: the uncertainty layers, when already
    made (:func:`product_attributes`, :func:`~seaice_mlflow.tasks.autoice.uncertainty_layers.product_layers`)."""
    valid = scene.sar_valid
    variables: dict[str, xr.DataArray] = {c: chart_variable(c, prediction.charts[c], valid) for c in CHART_NAMES}
    if prediction.scores is not None:
        for chart in CHART_NAMES:
            variables.update(score_variables(chart, prediction.scores[chart], valid, sic_value))
    layers = product_layers(prediction.uncertainty, valid) if layers is None else layers
    variables.update({layer.name: layer_variable(layer) for layer in layers})
    for name, grid, standard, direction in (
        (LATITUDE, scene.latitude, "latitude", "north"),
        (LONGITUDE, scene.longitude, "longitude", "east"),
    ):
        variables[name] = xr.DataArray(
            np.asarray(grid, dtype=np.float64),
            dims=(TIE_POINT_LINE, TIE_POINT_SAMPLE),
            # not a CF latitude/longitude (standard_name, degrees_north): CF's grid mapping wants exactly one of
            # each, the pixels' (location_variables) that locate the data
            attrs={
                "units": "degree",
                "long_name": f"{standard} (degrees {direction}) of the 21 x 21 tie points spanning the scene evenly "
                "from its first to its last line and sample",
                "comment": f"at 80 m line {TIE_POINT_LINE} and sample {TIE_POINT_SAMPLE} of the "
                f"{SAR_DIMS[0]} x {SAR_DIMS[1]} grid; bilinear between tie points",
            },
        )
    location = {"coordinates": f"{TIME} {PIXEL_LATITUDE} {PIXEL_LONGITUDE}", "grid_mapping": GRID_MAPPING}
    variables = {name: var.assign_attrs(location) if on_scene_grid(var) else var for name, var in variables.items()}
    variables.update(location_variables(scene))
    attrs = dict(attrs) if attrs is not None else product_attributes(scene, provenance)
    return xr.Dataset(variables, coords=tie_point_coordinates(scene), attrs=attrs)


def _attr(value: object) -> str | int | float:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    return value if isinstance(value, (int, float, str)) else str(value)


def encoding(ds: xr.Dataset) -> dict[str, dict]:
    """zlib level 1 everywhere; 255 (uint8) or NaN (float) as _FillValue of the data variables."""
    out = {}
    for name, var in ds.variables.items():
        enc: dict[str, object] = {"zlib": True, "complevel": 1, "_FillValue": None}
        if on_scene_grid(var):
            if name not in (PIXEL_LATITUDE, PIXEL_LONGITUDE):
                enc["_FillValue"] = np.float32(np.nan) if var.dtype == np.float32 else np.uint8(FILL)
            enc["chunksizes"] = tuple(min(n, 1024) if d in SAR_DIMS else 1 for d, n in var.sizes.items())
        out[str(name)] = enc
    return out


def write_chart_product(path: str | Path, dataset: xr.Dataset) -> Path:
    """Write a product atomically (the file appears complete under its name, or not at all)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        dataset.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding(dataset))
    return path


def write_products(
    folder: str | Path,
    scene: Scene,
    prediction: ChartPrediction,
    provenance: Mapping[str, object],
    sic_value: bool = True,
    formats: Sequence[ProductFormat] = ("netcdf",),
    gis: GisOptions = GisOptions(),
) -> list[Path]:
    """The products of ``scene`` in ``formats`` (``netcdf``: ``<scene_id>_charts.nc``; ``geotiff``,
    ``vector``: :mod:`~seaice_mlflow.tasks.autoice.gis`) with the same global attributes and, when
    ``prediction`` has them, the uncertainty layers, each written atomically; the files in format order."""
    folder = Path(folder)
    valid = scene.sar_valid
    layers = product_layers(prediction.uncertainty, valid)
    attrs = product_attributes(scene, provenance)
    if layers:
        attrs[LAYERS_ATTRIBUTE] = " ".join(layer.name for layer in layers)
    written: list[Path] = []
    if "netcdf" in formats:
        dataset = chart_dataset(scene, prediction, provenance, sic_value, attrs, layers)
        written.append(write_chart_product(folder / product_name(scene.scene_id), dataset))
    if any(f in GIS_FORMATS for f in formats):
        from seaice_mlflow.tasks.autoice.gis.writer import write_gis_products  # GDAL only when asked

        charts = {chart: masked(prediction.charts[chart], valid) for chart in CHART_NAMES}
        written += write_gis_products(
            folder, scene.scene_id, charts, scene.latitude, scene.longitude, formats, gis, attrs, layers
        )
    return written
