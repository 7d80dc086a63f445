"""Writing outputs safely: every file appears complete under its final name, or not at all."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
        ds = netCDF4.Dataset(tmp, "w", format="NETCDF4")
        try:
            yield ds
        finally:
            ds.close()


def remove(path: Path) -> None:
    """Remove a file or a folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def add_variable(ds: netCDF4.Dataset, name: str, dtype, dims: tuple[str, ...],
                 attrs: dict | None = None, chunks: tuple[int, ...] | None = None,
                 compress: bool = True) -> netCDF4.Variable:
    """Create a variable (zlib level 1 like the AI4Arctic files, no implicit fill value)."""
    if chunks is not None:
        chunks = tuple(max(1, min(c, len(ds.dimensions[d]))) for c, d in zip(chunks, dims))
    var = ds.createVariable(name, dtype, dims, zlib=compress, complevel=1, chunksizes=chunks,
                            fill_value=False)
    for key, value in (attrs or {}).items():
        var.setncattr(key, value)
    return var
