"""Reading AI4Arctic scenes: ready-to-train and test files, test references, raw files.

Every problem with a user's file becomes a :class:`SceneError` that names the file, says what
is wrong and what to do; no bare traceback reaches the user.

The charts handed out hold only their chart's classes and 255 (masked): those of ready-to-train
files and references are checked when loaded, the raw files' egg codes are masked where they
map to no class (:mod:`eggcode`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import xarray as xr

from seaice_mlflow.charts import CHART_NAMES, CHARTS, IGNORE_INDEX
from seaice_mlflow.data.naming import RAW, REFERENCE, parse_scene_name, prep_name, reference_name
from seaice_mlflow.data.scene import Scene
from seaice_mlflow.data.variables import (
    COARSE_DIMS,
    COARSE_FACTOR,
    COARSE_VARIABLES,
    LATITUDE,
    LONGITUDE,
    SAR_DIMS,
    SAR_VARIABLES,
    TIE_POINT_DIMS,
)
from seaice_mlflow.errors import SceneError, first_line

READY_LAYOUT: dict[str, tuple[str, ...]] = {
    **{name: SAR_DIMS for name in SAR_VARIABLES},
    **{name: COARSE_DIMS for name in COARSE_VARIABLES},
    LATITUDE: TIE_POINT_DIMS,
    LONGITUDE: TIE_POINT_DIMS,
}
CHART_LAYOUT: dict[str, tuple[str, ...]] = {chart: SAR_DIMS for chart in CHART_NAMES}

REDOWNLOAD = "the file is truncated or not netCDF; download it again"

#: Class values listed in an error before the list is cut short.
SHOWN_VALUES = 5


def check_file(path: Path) -> None:
    """A :class:`SceneError` naming ``path`` when it does not exist or is a folder."""
    if not path.exists():
        raise SceneError(path, f"does not exist ({path})", "check the path")
    if not path.is_file():
        raise SceneError(path, f"is a folder ({path}), not a scene file", "give the .nc files it holds")


@contextmanager
def open_scene_file(path: str | Path, cache: bool = True) -> Iterator[xr.Dataset]:
    """Open a netCDF scene file lazily, turning I/O failures into :class:`SceneError`.

    ``cache=False`` keeps xarray from holding on to variables once read (for window reads)."""
    path = Path(path)
    check_file(path)
    try:
        ds = xr.open_dataset(path, engine="netcdf4", decode_times=False, cache=cache)
    except Exception as err:  # netCDF4/HDF5 raise OSError, ValueError or RuntimeError
        raise SceneError(path, f"cannot be opened as netCDF ({first_line(err)})", REDOWNLOAD) from err
    try:
        yield ds
    finally:
        ds.close()


def load_variable(ds: xr.Dataset, name: str, path: Path, dtype=None, window=None) -> np.ndarray:
    """Read one variable (optionally a window of it) into memory, with a clear error if unreadable."""
    try:
        var = ds[name] if window is None else ds[name][window]
        values = var.values
    except Exception as err:
        raise SceneError(path, f"variable {name} cannot be read ({first_line(err)})", REDOWNLOAD) from err
    return values if dtype is None else values.astype(dtype, copy=False)


def foreign_values(values: np.ndarray, n_classes: int) -> list[int]:
    """The distinct values of a chart that are neither one of its ``n_classes`` classes nor the
    ignore value (255), sorted."""
    foreign = (values < 0) | ((values >= n_classes) & (values != IGNORE_INDEX))
    return np.unique(values[foreign]).tolist() if foreign.any() else []


def load_charts(ds: xr.Dataset, path: Path, names: Sequence[str] = CHART_NAMES) -> dict[str, np.ndarray]:
    """Read the charts ``names`` as uint8 class indices: integer variables whose every value is a
    class of its chart (:mod:`seaice_mlflow.charts`) or 255 = masked, checked before the cast to
    uint8 (which would wrap -1 to 255); one error lists every chart that has other values."""
    charts, foreign = {}, []
    for name in names:
        if not np.issubdtype(ds[name].dtype, np.integer):
            raise SceneError(path, f"{name} is {ds[name].dtype}, expected uint8 class indices",
                             "the file is not an AI4Arctic chart file")
        values = load_variable(ds, name, path)
        n_classes = CHARTS[name].n_classes
        found = foreign_values(values, n_classes)
        if found:
            shown = ", ".join(map(str, found[:SHOWN_VALUES])) + (", ..." if len(found) > SHOWN_VALUES else "")
            foreign.append(f"{name} {shown} (valid 0-{n_classes - 1})")
        charts[name] = values.astype(np.uint8, copy=False)
    if foreign:
        raise SceneError(path, f"chart values outside the classes: {', '.join(foreign)}; {IGNORE_INDEX} = masked",
                         "the charts are damaged or use another class table; fix them or leave the file out")
    return charts


def check_layout(ds: xr.Dataset, path: Path, layout: Mapping[str, tuple[str, ...]], what: str) -> None:
    """All variables of ``layout`` present with the given dims, else one error listing them all."""
    missing = [name for name in layout if name not in ds.variables]
    if missing:
        raise SceneError(path, f"missing variable(s) {', '.join(missing)}",
                         f"this is not a complete AI4Arctic {what} file; download it again")
    wrong = [f"{name} has dims {tuple(ds[name].dims)}, expected {dims}"
             for name, dims in layout.items() if tuple(ds[name].dims) != dims]
    if wrong:
        raise SceneError(path, "wrong dimensions: " + "; ".join(wrong),
                         f"the file does not have the AI4Arctic {what} layout")


def check_scene(path: Path, shape: tuple[int, int], coarse_shape: tuple[int, int],
                hh: np.ndarray, min_size: tuple[int, int] | None) -> None:
    """Shared checks: 2 km grid matches the SAR grid, scene large enough, SAR not empty."""
    expected = (shape[0] // COARSE_FACTOR, shape[1] // COARSE_FACTOR)
    if any(abs(c - e) > 1 for c, e in zip(coarse_shape, expected)) or min(coarse_shape) < 1:
        raise SceneError(path, f"2 km grid {coarse_shape} does not fit the SAR grid {shape} "
                         f"(expected about {expected}, 25 SAR pixels per cell)",
                         "the file is damaged or not an AI4Arctic scene")
    if min_size is not None and (shape[0] < min_size[0] or shape[1] < min_size[1]):
        raise SceneError(path, f"scene is {shape[0]}x{shape[1]} pixels, smaller than the "
                         f"{min_size[0]}x{min_size[1]} asked for",
                         "use a smaller patch/tile size or leave this scene out")
    if not np.any(np.isfinite(hh) & (hh != 0)):
        raise SceneError(path, "SAR (nersc_sar_primary) is all zero or NaN",
                         "the scene holds no radar data; leave it out")


def read_charts(path: str | Path, shape: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """SIC/SOD/FLOE (uint8) of a ready-to-train file or a ``_prep_reference.nc`` file."""
    path = Path(path)
    with open_scene_file(path) as ds:
        check_layout(ds, path, CHART_LAYOUT, "chart")
        charts = load_charts(ds, path)
    found = charts["SIC"].shape
    if shape is not None and found != tuple(shape):
        raise SceneError(path, f"charts are {found[0]}x{found[1]} but the scene is {shape[0]}x{shape[1]}",
                         "the reference belongs to another scene; check the file names")
    return charts


def has_charts(path: str | Path) -> bool:
    """Whether a prep file holds charts (train) or not (test), read from its header only."""
    with open_scene_file(path) as ds:
        return any(chart in ds.variables for chart in CHART_NAMES)


def resolve_reference(path: Path, key: str, reference: str | Path | bool | None) -> Path | None:
    """The reference file to join: a given path, the sibling ``<key>_prep_reference.nc``, or none."""
    if reference is None or reference is False:
        return None
    if reference is True:
        sibling = path.parent / reference_name(key)
        return sibling if sibling.is_file() else None
    return Path(reference)


def read_scene(path: str | Path, *, reference: str | Path | bool | None = True,
               min_size: tuple[int, int] | None = None) -> Scene:
    """Read any scene file (ready, test or raw) into a :class:`Scene` with 80 m charts.

    ``reference``: True joins the sibling ``<key>_prep_reference.nc`` when there is one,
    a path joins that file, False/None reads inputs only.
    """
    path = Path(path)
    check_file(path)  # a missing path is "does not exist", whatever its name
    name = parse_scene_name(path)
    if name.file_kind == REFERENCE:
        raise SceneError(path, "is a test reference (charts only), not a scene",
                         f"read {prep_name(name.key)} instead; its reference is joined automatically")
    if name.file_kind == RAW:
        from seaice_mlflow.data.raw import read_raw_scene

        return read_raw_scene(path, reference=reference, min_size=min_size)
    return read_prep_scene(path, reference=reference, min_size=min_size)


def read_prep_scene(path: str | Path, *, reference: str | Path | bool | None = True,
                    min_size: tuple[int, int] | None = None) -> Scene:
    """Read a ready-to-train (``_prep.nc``) file, joining the test reference when asked."""
    path = Path(path)
    with open_scene_file(path) as ds:
        return build_scene(path, *load_prep(ds, path, SAR_VARIABLES), reference, min_size)


def load_prep(ds: xr.Dataset, path: Path, sar_names: Sequence[str]) -> tuple:
    """Check an open ``_prep.nc`` file's layout and load (kind, the ``sar_names`` 80 m variables,
    the 2 km variables, latitude, longitude, charts, attributes), as :func:`build_scene` takes them."""
    check_layout(ds, path, READY_LAYOUT, "ready-to-train")
    in_file = [chart for chart in CHART_NAMES if chart in ds.variables]
    if in_file:
        check_layout(ds, path, CHART_LAYOUT, "ready-to-train")
    sar = {n: load_variable(ds, n, path, np.float32) for n in sar_names}
    coarse = {n: load_variable(ds, n, path, np.float32) for n in COARSE_VARIABLES}
    latitude = load_variable(ds, LATITUDE, path, np.float64)
    longitude = load_variable(ds, LONGITUDE, path, np.float64)
    charts = load_charts(ds, path, in_file)
    return "ready" if in_file else "test", sar, coarse, latitude, longitude, charts, dict(ds.attrs)


def build_scene(path: Path, kind: str, sar: dict, coarse: dict, latitude: np.ndarray, longitude: np.ndarray,
                charts: dict, attrs: dict, reference: str | Path | bool | None,
                min_size: tuple[int, int] | None) -> Scene:
    """Check what a reader loaded, join the test reference when the file has no charts, make the Scene."""
    name = parse_scene_name(path)
    shape = sar["nersc_sar_primary"].shape
    check_scene(path, shape, coarse["btemp_6_9h"].shape, sar["nersc_sar_primary"], min_size)
    if not charts:
        ref_path = resolve_reference(path, name.key, reference)
        if ref_path is not None:
            charts = read_charts(ref_path, shape)
    return Scene(scene_id=name.key, provider=name.provider, date=name.time, kind=kind, source=path, sar=sar,
                 coarse=coarse, latitude=latitude, longitude=longitude, charts=charts, attrs=attrs)


def find_references(directory: str | Path) -> dict[str, Path]:
    """Scene key -> file holding its reference charts, for every scene in ``directory``.

    Test references (``_prep_reference.nc``) come first; ready-to-train files with charts and raw
    files with an ice chart also count (the raw chart is converted on reading).
    """
    from seaice_mlflow.data.naming import PREP_PATTERN, RAW_PATTERN

    directory = Path(directory)
    if not directory.is_dir():
        raise SceneError(directory, "is not a folder", "give the folder with the reference charts")
    found: dict[str, Path] = {}
    for path in sorted(directory.glob("*.nc")):
        if not (PREP_PATTERN.match(path.name) or RAW_PATTERN.match(path.name)):
            continue
        name = parse_scene_name(path)
        if name.file_kind == REFERENCE:
            found[name.key] = path
        elif name.key not in found and _holds_chart(path, name.file_kind):
            found[name.key] = path
    return found


def _holds_chart(path: Path, file_kind: str) -> bool:
    with open_scene_file(path) as ds:
        names = ("polygon_icechart",) if file_kind == RAW else CHART_NAMES
        return all(n in ds.variables for n in names)


def reference_charts(path: str | Path, shape: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """The 80 m reference charts held by ``path`` (reference, ready-to-train or raw file)."""
    path = Path(path)
    if parse_scene_name(path).file_kind == RAW:
        charts = read_scene(path, reference=False).charts
        found = charts["SIC"].shape
        if shape is not None and found != tuple(shape):
            raise SceneError(path, f"charts are {found[0]}x{found[1]} but the prediction is {shape[0]}x{shape[1]}",
                             "the prediction belongs to another scene")
        return charts
    return read_charts(path, shape)
