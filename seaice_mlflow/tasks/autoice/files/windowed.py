"""Scenes read window by window from their netCDF file, for full-scene inference.

:func:`read_scene` loads the four 80 m SAR variables whole (0.4 GiB for a 5000 x 5200 scene);
the inference engine only ever asks for tiles, so :func:`open_scene` keeps a ready-to-train or
test file open instead and reads each window when it is asked for. What stays in memory is
small: the 2 km grid, the tie points, the SAR mask and the (uint8) reference charts. The file
is checked exactly as :func:`read_scene` checks it, and its values that are not finite are masked
and filled by the same rules (:mod:`.nonfinite`): the 80 m variables are scanned strip by strip at
opening, and every window read gets the pixels found there set to the fill value. Raw 40 m files
must be reduced to 80 m as a whole and are read into memory as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import xarray as xr

from seaice_mlflow.core.tiling import Window
from seaice_mlflow.tasks.autoice.files.naming import PREP, parse_scene_name
from seaice_mlflow.tasks.autoice.files.netcdf import check_file, load_variable, open_scene_file
from seaice_mlflow.tasks.autoice.files.nonfinite import MaskedPixels, blank, scan_pixels
from seaice_mlflow.tasks.autoice.files.prep import build_scene, load_prep
from seaice_mlflow.tasks.autoice.files.reader import read_scene
from seaice_mlflow.tasks.autoice.files.variables import SAR_VARIABLES
from seaice_mlflow.tasks.autoice.scene import Scene

#: The variable that marks where there is SAR data (read once, at opening, for the mask).
HH = "nersc_sar_primary"


class WindowedVariables(Mapping):
    """The 80 m variables of an open scene file: ``[name]`` reads one whole, :meth:`window` a window;
    both set the ``masked`` pixels (where some 80 m value is not finite) to the fill value 0."""

    def __init__(
        self, ds: xr.Dataset, path: Path, names: Sequence[str] = SAR_VARIABLES, masked: np.ndarray | None = None
    ):
        self.ds, self.path, self.names, self.masked = ds, path, tuple(names), masked

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise KeyError(name)
        return blank(load_variable(self.ds, name, self.path, np.float32), self.masked)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def window(self, name: str, window: Window) -> np.ndarray:
        values = load_variable(self.ds, name, self.path, np.float32, window.slices)
        return blank(values, None if self.masked is None else self.masked[window.slices])


@dataclass
class SceneFile(Scene):
    """A :class:`Scene` whose 80 m SAR variables stay in the (open) file until a window is read."""

    valid: np.ndarray | None = None  # the SAR mask, read once at opening

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.valid.shape)

    @property
    def sar_valid(self) -> np.ndarray:
        return self.valid

    def read_sar(self, names: Sequence[str], window: Window) -> dict[str, np.ndarray]:
        return {name: self.sar.window(name, window) for name in names}


def scan_file(ds: xr.Dataset, path: Path, hh: np.ndarray) -> MaskedPixels:
    """The 80 m pixels of an open file where some variable is not finite: HH in hand, the others read
    strip by strip."""

    def lines(variable: str, rows: slice) -> np.ndarray:
        return hh[rows] if variable == HH else load_variable(ds, variable, path, np.float32, (rows, slice(None)))

    return scan_pixels(lines, SAR_VARIABLES, len(hh))


@contextmanager
def open_scene(
    path: str | Path, *, reference: str | Path | bool | None = True, min_size: tuple[int, int] | None = None
) -> Iterator[Scene]:
    """A scene for the duration of the ``with`` block: a :class:`SceneFile` for ``_prep.nc``
    files, an in-memory :class:`Scene` (:func:`read_scene`) for raw files. Errors as :func:`read_scene`."""
    path = Path(path)
    check_file(path)
    name = parse_scene_name(path)
    if name.file_kind != PREP:
        yield read_scene(path, reference=reference, min_size=min_size)
        return
    with open_scene_file(path, cache=False) as ds:
        content = load_prep(ds, path, [HH])  # holds HH only
        masked = scan_file(ds, path, content.sar[HH])
        checked = build_scene(path, name, content, reference, min_size, masked)
        parts = {f.name: getattr(checked, f.name) for f in fields(Scene) if f.name != "sar"}
        scene = SceneFile(**parts, sar=WindowedVariables(ds, path, masked=masked.pixels), valid=checked.sar_valid)
        del checked, content  # HH itself is not kept
        yield scene
