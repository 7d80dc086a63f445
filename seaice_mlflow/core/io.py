"""Writing outputs safely: every file appears complete under its final name, or not at all."""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from numpy.typing import DTypeLike

from seaice_mlflow.core.errors import ParameterError

if TYPE_CHECKING:  # netCDF4 is imported where a netCDF file is written (0.2-0.7 s), not with every writer
    import netCDF4


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; rename it to ``path`` on success.

    On any error the temporary file (or folder) is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise


@contextmanager
def atomic_netcdf(path: str | Path) -> Iterator[netCDF4.Dataset]:
    """A new netCDF-4 file written under a temporary name, renamed into place when complete."""
    with atomic_path(path) as tmp:
        import netCDF4

        ds = netCDF4.Dataset(tmp, "w", format="NETCDF4")
        try:
            yield ds
        finally:
            ds.close()


def check_writable(path: str | Path, option: str, kind: str = "folder") -> Path:
    """Fail at once, naming ``option``, when ``path`` (a folder, or a file with ``kind="file"``)
    could not be written: below a file, or in a folder this process may not write.

    Probes the nearest existing folder with a temporary file (permissions as the OS applies
    them, root's override included); creates nothing. Returns the absolute path.
    """
    path = Path(path).expanduser().absolute()
    if path.exists() and (kind == "folder") != path.is_dir():
        raise ParameterError(option, f"{path} is a {'file' if path.is_file() else 'folder'}; give a {kind} to write")
    existing = path if kind == "folder" else path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ParameterError(option, f"{path} cannot be created: {existing} is a file; give a {kind} elsewhere")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".seaice-probe-"):
            pass
    except OSError as err:
        raise ParameterError(
            option, f"{path} cannot be written ({err.strerror or err} in {existing}); give a folder you may write to"
        ) from None
    return path


def remove(path: Path) -> None:
    """Remove a file or a folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def add_variable(
    ds: netCDF4.Dataset,
    name: str,
    dtype: DTypeLike,  # a numpy dtype or its netCDF code ("u1", "i2", "f4")
    dims: tuple[str, ...],
    attrs: dict | None = None,
    chunks: tuple[int, ...] | None = None,
    compress: bool = True,
) -> netCDF4.Variable:
    """Create a variable (zlib level 1 like the AI4Arctic files, no implicit fill value)."""
    if chunks is not None:
        chunks = tuple(max(1, min(c, len(ds.dimensions[d]))) for c, d in zip(chunks, dims))
    var = ds.createVariable(name, dtype, dims, zlib=compress, complevel=1, chunksizes=chunks, fill_value=False)
    for key, value in (attrs or {}).items():
        var.setncattr(key, value)
    return var


def write_csv(rows: Sequence[Mapping[str, object]], path: str | Path) -> Path:
    """Rows as a CSV file (columns in order of first appearance; a NaN float left empty), written atomically."""
    path = Path(path)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()})
    return path
