"""The AutoICE submission file ``upload_package.nc`` (spec section 6): writer and reader.

One uint8 variable per scene and chart, named ``<scene>_<chart>`` with dims
``<scene>_<chart>_dim0/_dim1``, full 80 m scene shape, zlib level 1, netCDF-4. Predictions are
not masked; the scorer masks with the reference.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from seaice_mlflow.core.errors import SceneError
from seaice_mlflow.core.io import add_variable, atomic_netcdf
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES
from seaice_mlflow.tasks.autoice.files.netcdf import load_variable, open_scene_file

#: File name of the AutoICE submission.
UPLOAD_PACKAGE = "upload_package.nc"
VARIABLE_PATTERN = re.compile(r"^(?P<scene>\d{8}T\d{6}_(?:dmi|cis))_(?P<chart>SIC|SOD|FLOE)$")


def variable_name(scene_id: str, chart: str) -> str:
    return f"{scene_id}_{chart}"


class UploadPackageWriter:
    """Writes ``upload_package.nc`` scene by scene; the file appears only when complete.

    >>> with UploadPackageWriter(path) as package:
    ...     package.add("20180124T194759_dmi", {"SIC": sic, "SOD": sod, "FLOE": floe})
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._stack = ExitStack()
        self.scenes: list[str] = []

    def __enter__(self) -> UploadPackageWriter:
        self._ds = self._stack.enter_context(atomic_netcdf(self.path))
        return self

    def __exit__(self, *exc) -> None:
        self._stack.__exit__(*exc)

    def add(self, scene_id: str, charts: Mapping[str, np.ndarray]) -> None:
        if scene_id in self.scenes:
            raise ValueError(f"scene {scene_id} is already in the upload package")
        for chart in CHART_NAMES:
            values = np.asarray(charts[chart])
            if values.ndim != 2 or not np.issubdtype(values.dtype, np.integer):
                raise ValueError(
                    f"{scene_id} {chart}: expected a 2-D integer class map, got {values.dtype} {values.shape}"
                )
            name = variable_name(scene_id, chart)
            dims = (f"{name}_dim0", f"{name}_dim1")
            for dim, size in zip(dims, values.shape):
                self._ds.createDimension(dim, size)
            add_variable(self._ds, name, "u1", dims)[:] = values.astype(np.uint8)
        self.scenes.append(scene_id)


def write_upload_package(path: str | Path, predictions: Mapping[str, Mapping[str, np.ndarray]]) -> Path:
    """Write all scenes' predictions at once."""
    with UploadPackageWriter(path) as package:
        for scene_id, charts in predictions.items():
            package.add(scene_id, charts)
    return Path(path)


def package_scenes(path: str | Path) -> list[str]:
    """Scene ids in an upload package, checking that each has all three charts."""
    path = Path(path)
    with open_scene_file(path) as ds:
        found: dict[str, set[str]] = {}
        for name in ds.data_vars:
            match = VARIABLE_PATTERN.match(str(name))
            if match is None:
                raise SceneError(
                    path,
                    f"variable {name} is not named <YYYYMMDDThhmmss>_<dmi|cis>_<SIC|SOD|FLOE>",
                    "write the package with `seaice evaluate`/`seaice predict --upload-package`",
                )
            found.setdefault(match["scene"], set()).add(match["chart"])
    incomplete = [s for s, charts in found.items() if charts != set(CHART_NAMES)]
    if incomplete:
        raise SceneError(
            path,
            f"scene(s) {', '.join(sorted(incomplete))} lack some of SIC, SOD, FLOE",
            "every scene needs all three charts",
        )
    if not found:
        raise SceneError(path, "holds no predictions", "check that the right file was given")
    return sorted(found)


def iter_upload_package(path: str | Path) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """(scene id, {chart: uint8 class map}) for each scene, one scene in memory at a time."""
    path = Path(path)
    scenes = package_scenes(path)
    with open_scene_file(path) as ds:
        for scene in scenes:
            charts = {}
            for chart in CHART_NAMES:
                name = variable_name(scene, chart)
                if not np.issubdtype(ds[name].dtype, np.integer):
                    raise SceneError(
                        path,
                        f"{name} is {ds[name].dtype}, expected uint8 class indices",
                        "predictions must be class indices",
                    )
                charts[chart] = load_variable(ds, name, path, np.uint8)
            yield scene, charts


def read_upload_package(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """The whole package in memory: {scene: {chart: class map}}."""
    return dict(iter_upload_package(path))
