"""netCDF helpers for AI4Arctic files: open, read a variable, check a layout; every failure a
:class:`~seaice_mlflow.core.errors.SceneError` that names the file, the problem and what to do."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import xarray as xr

from seaice_mlflow.core.errors import SceneError, first_line, looked_at

REDOWNLOAD = "the file is truncated or not netCDF; download it again"


def check_file(path: Path) -> None:
    """A :class:`SceneError` naming ``path`` when it does not exist or is a folder."""
    if not path.exists():
        raise SceneError(path, f"does not exist: {looked_at(path)}", "check the path")
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


def check_layout(ds: xr.Dataset, path: Path, layout: Mapping[str, tuple[str, ...]], what: str) -> None:
    """All variables of ``layout`` present with the given dims, else one error listing them all."""
    missing = [name for name in layout if name not in ds.variables]
    if missing:
        raise SceneError(
            path,
            f"missing variable(s) {', '.join(missing)}",
            f"this is not a complete AI4Arctic {what} file; download it again",
        )
    wrong = [
        f"{name} has dims {tuple(ds[name].dims)}, expected {dims}"
        for name, dims in layout.items()
        if tuple(ds[name].dims) != dims
    ]
    if wrong:
        raise SceneError(
            path, "wrong dimensions: " + "; ".join(wrong), f"the file does not have the AI4Arctic {what} layout"
        )
