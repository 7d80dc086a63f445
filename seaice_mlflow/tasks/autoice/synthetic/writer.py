"""netCDF layouts of the AI4Arctic files (spec sections 2, 3 and 8), written strip by strip.

Names, dims, dtypes and attributes are those of the real files, so the reader treats synthetic
and real scenes alike.
"""

from __future__ import annotations

import zlib
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from seaice_mlflow.core.io import add_variable, atomic_netcdf
from seaice_mlflow.tasks.autoice.charts import CHARTS, IGNORE_INDEX
from seaice_mlflow.tasks.autoice.files.eggcode import format_polygon_codes
from seaice_mlflow.tasks.autoice.files.naming import prep_name, reference_name
from seaice_mlflow.tasks.autoice.files.raw import POLYGON_CODES, POLYGON_VARIABLE, TIE_POINT_DIM, TiePoints
from seaice_mlflow.tasks.autoice.files.variables import (
    AMSR2_VARIABLES,
    COARSE_DIMS,
    DISTANCE_ZONE_DESCRIPTION,
    LATITUDE,
    LONGITUDE,
    SAR_DIMS,
    TIE_POINT_DIMS,
    standard_scale,
)
from seaice_mlflow.tasks.autoice.synthetic.layout import SceneIdentity

ERA5_ATTRS: dict[str, dict[str, str]] = {
    "u10m_rotated": {"units": "m/s", "long_name": "10 metre wind component along the S1 flight direction"},
    "v10m_rotated": {"units": "m/s", "long_name": "10 metre wind component across the S1 flight direction"},
    "t2m": {"units": "K", "long_name": "2 metre temperature"},
    "skt": {"units": "K", "long_name": "Skin temperature"},
    "tcwv": {"units": "kg/m2", "long_name": "Total column water vapour"},
    "tclw": {"units": "kg/m2", "long_name": "Total column cloud liquid water"},
}
DISTANCE_ATTRS = {
    "long_name": "Distance to land zones numbered with ids ranging from 0 to 41",
    "zonal_range_description": DISTANCE_ZONE_DESCRIPTION,
}
#: Chunking of the SAR-grid variables: None keeps netCDF-C's defaults (about 1667 x 1734 for a
#: 5000 x 5200 float32 variable), what xarray's ``to_netcdf`` with zlib gives and so, most likely,
#: what the real files have. Strips are written through a chunk cache big enough for a row of chunks.
SAR_CHUNK = None
STRIP_CACHE_BYTES = 256 << 20


def btemp_description(name: str) -> str:
    band, pol = name[len("btemp_") : -1], name[-1]
    return (
        f"Brightness temperature in K at {band.replace('_', '.')}GHz. "
        f"Polarization: {'horizontal' if pol == 'h' else 'vertical'}."
    )


def amsr2_attrs(identity: SceneIdentity, name: str, values: np.ndarray) -> dict:
    return {
        "AMSR2_swaths": f"GW1AM2_{identity.time:%Y%m%d}{identity.time.hour:02d}00_"
        f"{identity.time.minute:03d}D_L1SGBTBR_2220220.h5",
        "AMSR2_S1_delays": int(zlib.crc32(identity.key.encode()) % 3000),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
        "description": btemp_description(name),
    }


def sar_attrs(identity: SceneIdentity, pol: str) -> dict:
    return {"polarisation": pol, "upstream_id": identity.product_id, "description": "Sigma0 in dB"}


class DbRange:
    """Running min/max of finite dB values (the files' ``min``/``max`` attributes)."""

    def __init__(self):
        self.low, self.high = np.inf, -np.inf

    def update(self, values: np.ndarray) -> None:
        finite = values[np.isfinite(values)]
        if finite.size:
            self.low, self.high = min(self.low, float(finite.min())), max(self.high, float(finite.max()))

    def attrs(self) -> dict[str, float]:
        return {"min": self.low, "max": self.high}


class _AtomicFile:
    """Base of the writers: a netCDF file that appears under its name only when complete."""

    def __init__(self, path: Path):
        self.path = path
        self._stack = ExitStack()
        self.ds = self._stack.enter_context(atomic_netcdf(path))

    def sar_variable(self, name: str, dtype: str, attrs: dict) -> None:
        """A variable on the SAR grid, written strip by strip."""
        var = add_variable(self.ds, name, dtype, SAR_DIMS, attrs, SAR_CHUNK)
        var.set_var_chunk_cache(size=STRIP_CACHE_BYTES)

    def chart_variables(self) -> None:
        for chart in CHARTS.values():
            self.sar_variable(chart.name, "u1", {"polygon": chart.long_name, "chart_fill_value": IGNORE_INDEX})

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._stack.__exit__(*exc)


class ReferenceFile(_AtomicFile):
    """``<key>_prep_reference.nc``: the test charts on the 80 m grid."""

    def __init__(self, directory: Path, identity: SceneIdentity, shape: tuple[int, int]):
        super().__init__(directory / reference_name(identity.key))
        self.ds.createDimension(SAR_DIMS[0], shape[0])
        self.ds.createDimension(SAR_DIMS[1], shape[1])
        self.chart_variables()

    def write_strip(self, row: int, charts: dict[str, np.ndarray]) -> None:
        for name, values in charts.items():
            self.ds[name][row : row + values.shape[0], :] = values


class ReadyFile(_AtomicFile):
    """``<key>_prep.nc``: a ready-to-train file (29 variables) or, without charts, a test file."""

    def __init__(
        self,
        directory: Path,
        identity: SceneIdentity,
        shape: tuple[int, int],
        coarse_shape: tuple[int, int],
        tie: TiePoints,
        with_charts: bool,
    ):
        super().__init__(directory / prep_name(identity.key))
        self.identity = identity
        ds = self.ds
        ds.createDimension(SAR_DIMS[0], shape[0])
        ds.createDimension(SAR_DIMS[1], shape[1])
        ds.createDimension(TIE_POINT_DIMS[0], tie.latitude.shape[0])
        ds.createDimension(TIE_POINT_DIMS[1], tie.latitude.shape[1])
        ds.createDimension(COARSE_DIMS[0], coarse_shape[0])
        ds.createDimension(COARSE_DIMS[1], coarse_shape[1])
        if with_charts:
            self.chart_variables()
        add_variable(ds, LATITUDE, "f8", TIE_POINT_DIMS)[:] = tie.latitude
        add_variable(ds, LONGITUDE, "f8", TIE_POINT_DIMS)[:] = tie.longitude
        for pol, name in (("HH", "nersc_sar_primary"), ("HV", "nersc_sar_secondary")):
            self.sar_variable(name, "f4", {**sar_attrs(identity, pol), "variable_fill_value": 0})
        self.sar_variable("sar_incidenceangle", "f4", {"variable_fill_value": 0})
        self.sar_variable("distance_map", "f4", DISTANCE_ATTRS)
        self.db = {"nersc_sar_primary": DbRange(), "nersc_sar_secondary": DbRange()}

    def write_strip(
        self, row: int, sar: dict[str, np.ndarray], charts: dict[str, np.ndarray] | None, raw_db: dict[str, np.ndarray]
    ) -> None:
        """One strip of z-scored inputs (and charts), plus its dB values for the min/max attributes."""
        rows = slice(row, row + next(iter(sar.values())).shape[0])
        for name, values in {**sar, **(charts or {})}.items():
            self.ds[name][rows, :] = values
        for name, values in raw_db.items():
            self.db[name].update(values)

    def finish(self, coarse: dict[str, np.ndarray]) -> None:
        """Write the 2 km variables (given in physical units) and the attributes known at the end."""
        for name, values in coarse.items():
            attrs = amsr2_attrs(self.identity, name, values) if name in AMSR2_VARIABLES else ERA5_ATTRS[name]
            add_variable(self.ds, name, "f4", COARSE_DIMS, attrs)[:] = standard_scale(name, values)
        for name, db_range in self.db.items():
            self.ds[name].setncatts(db_range.attrs())
        self.ds.setncatts(
            {
                "scene_id": prep_name(self.identity.key),
                "original_id": self.identity.raw_name,
                "ice_service": self.identity.provider,
                "flip": 0,
                "pixel_spacing": 80,
            }
        )


class RawFile(_AtomicFile):
    """A raw 40 m file; with ``codes`` a training file (``polygon_icechart`` + ``polygon_codes``),
    without them a test file (``..._testdata.nc``)."""

    def __init__(
        self,
        directory: Path,
        identity: SceneIdentity,
        shape40: tuple[int, int],
        coarse_shape: tuple[int, int],
        tie: TiePoints,
        codes: list[str] | None,
    ):
        name = identity.raw_name if codes is not None else identity.raw_name.replace(".nc", "_testdata.nc")
        super().__init__(directory / name)
        self.identity = identity
        ds = self.ds
        ds.createDimension(SAR_DIMS[0], shape40[0])
        ds.createDimension(SAR_DIMS[1], shape40[1])
        ds.createDimension(TIE_POINT_DIM, tie.latitude.size)
        ds.createDimension(COARSE_DIMS[0], coarse_shape[0])
        ds.createDimension(COARSE_DIMS[1], coarse_shape[1])
        for pol, var in (("HH", "nersc_sar_primary"), ("HV", "nersc_sar_secondary")):
            self.sar_variable(var, "f4", sar_attrs(identity, pol))
        if codes is not None:
            ds.createDimension(POLYGON_CODES, len(codes))
            add_variable(
                ds, POLYGON_CODES, str, (POLYGON_CODES,), {"icechart_id": identity.icechart_id}, compress=False
            )[:] = np.array(codes, dtype=object)
            self.sar_variable(
                POLYGON_VARIABLE,
                "f4",
                {"description": "Polygon ID of the ice chart, see polygon_codes", "icechart_id": identity.icechart_id},
            )
        self.sar_variable("distance_map", "f4", DISTANCE_ATTRS)
        self.sar_variable(
            "swath_segmentation", "u1", {"description": "Sentinel-1 EW sub-swath number, 0 outside the swath"}
        )
        grid_lines, grid_samples = np.meshgrid(tie.lines, tie.samples, indexing="ij")
        tie_values = {
            "sar_grid_line": grid_lines,
            "sar_grid_sample": grid_samples,
            "sar_grid_latitude": tie.latitude,
            "sar_grid_longitude": tie.longitude,
            "sar_grid_incidenceangle": tie.incidence,
            "sar_grid_height": np.zeros_like(tie.latitude),
        }
        for var, values in tie_values.items():
            add_variable(ds, var, "f8", (TIE_POINT_DIM,), {"long_name": var.replace("_", " ")})[:] = values.ravel()
        self.db = {"nersc_sar_primary": DbRange(), "nersc_sar_secondary": DbRange()}

    def write_strip(self, row40: int, values: dict[str, np.ndarray]) -> None:
        """One strip of 40 m variables (HH/HV dB, polygon ids, distance zones, sub-swaths)."""
        rows = slice(row40, row40 + next(iter(values.values())).shape[0])
        for name, array in values.items():
            self.ds[name][rows, :] = array
            if name in self.db:
                self.db[name].update(array)

    def finish(self, coarse: dict[str, np.ndarray]) -> None:
        for name, values in coarse.items():
            attrs = amsr2_attrs(self.identity, name, values) if name in AMSR2_VARIABLES else ERA5_ATTRS[name]
            add_variable(self.ds, name, "f8", COARSE_DIMS, attrs)[:] = values
        add_variable(
            self.ds, "amsr2_swath_map", "u1", COARSE_DIMS, {"description": "AMSR2 swath used for each 2 km cell"}
        )[:] = 1
        for name, db_range in self.db.items():
            self.ds[name].setncatts(db_range.attrs())
        self.ds.setncatts(
            {
                "title": "Training data file from AI4Arctic_CCN challenge dataset (synthetic scene "
                "generated by seaice-mlflow)",
                "geometric_info": "Sentinel-1 EW GRDM on its native grid, 40 m pixel spacing",
                "sar_denoise_by_nersc_documentation": "https://github.com/nansencenter/sentinel1denoised",
            }
        )


def polygon_code_rows(rng: np.random.Generator, polygons) -> list[str]:
    """The ``polygon_codes`` strings of a scene's polygons (header first)."""
    rows, kinds = zip(*(p.egg_code(rng) for p in polygons)) if polygons else ((), ())
    return format_polygon_codes(np.array(rows, dtype=np.int64).reshape(-1, 13), kinds)
