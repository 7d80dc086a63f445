"""Ready-to-train and test (``_prep.nc``) files and test references (``_prep_reference.nc``).

The charts handed out hold only their chart's classes and 255 (masked): they are checked against
the class tables when loaded. :func:`build_scene` turns what a reader loaded (a
:class:`SceneContent`, of this reader or of :mod:`raw`) into a checked :class:`Scene`, joining the
test reference of a file without charts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from seaice_mlflow.core.errors import SceneError
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES, CHARTS, IGNORE_INDEX
from seaice_mlflow.tasks.autoice.files.naming import SceneName, reference_name
from seaice_mlflow.tasks.autoice.files.netcdf import check_layout, load_variable, open_scene_file
from seaice_mlflow.tasks.autoice.files.nonfinite import MaskedPixels, repair_inputs
from seaice_mlflow.tasks.autoice.files.variables import (
    COARSE_DIMS,
    COARSE_FACTOR,
    COARSE_VARIABLES,
    LATITUDE,
    LONGITUDE,
    SAR_DIMS,
    SAR_VARIABLES,
    TIE_POINT_DIMS,
)
from seaice_mlflow.tasks.autoice.scene import Scene, SceneKind

READY_LAYOUT: dict[str, tuple[str, ...]] = {
    **{name: SAR_DIMS for name in SAR_VARIABLES},
    **{name: COARSE_DIMS for name in COARSE_VARIABLES},
    LATITUDE: TIE_POINT_DIMS,
    LONGITUDE: TIE_POINT_DIMS,
}
CHART_LAYOUT: dict[str, tuple[str, ...]] = {chart: SAR_DIMS for chart in CHART_NAMES}

#: Class values listed in an error before the list is cut short.
SHOWN_VALUES = 5


@dataclass
class SceneContent:
    """What a reader loaded from one file, before :func:`build_scene` checks it."""

    kind: SceneKind
    sar: Mapping[str, np.ndarray]  # 80 m variables (all, or those asked for)
    coarse: dict[str, np.ndarray]  # 2 km variables
    latitude: np.ndarray
    longitude: np.ndarray
    charts: dict[str, np.ndarray] = field(default_factory=dict)  # empty: none in the file
    attrs: dict[str, object] = field(default_factory=dict)


def foreign_values(values: np.ndarray, n_classes: int) -> list[int]:
    """The distinct values of a chart that are neither one of its ``n_classes`` classes nor the
    ignore value (255), sorted."""
    foreign = (values < 0) | ((values >= n_classes) & (values != IGNORE_INDEX))
    return np.unique(values[foreign]).tolist() if foreign.any() else []


def load_charts(ds: xr.Dataset, path: Path, names: Sequence[str] = CHART_NAMES) -> dict[str, np.ndarray]:
    """Read the charts ``names`` as uint8 class indices: integer variables whose every value is a
    class of its chart (:mod:`seaice_mlflow.tasks.autoice.charts`) or 255 = masked, checked before the cast to
    uint8 (which would wrap -1 to 255); one error lists every chart that has other values."""
    charts, foreign = {}, []
    for name in names:
        if not np.issubdtype(ds[name].dtype, np.integer):
            raise SceneError(
                path,
                f"{name} is {ds[name].dtype}, expected uint8 class indices",
                "the file is not an AI4Arctic chart file",
            )
        values = load_variable(ds, name, path)
        n_classes = CHARTS[name].n_classes
        found = foreign_values(values, n_classes)
        if found:
            shown = ", ".join(map(str, found[:SHOWN_VALUES])) + (", ..." if len(found) > SHOWN_VALUES else "")
            foreign.append(f"{name} {shown} (valid 0-{n_classes - 1})")
        charts[name] = values.astype(np.uint8, copy=False)
    if foreign:
        raise SceneError(
            path,
            f"chart values outside the classes: {', '.join(foreign)}; {IGNORE_INDEX} = masked",
            "the charts are damaged or use another class table; fix them or leave the file out",
        )
    return charts


def check_scene(
    path: Path, shape: tuple[int, int], coarse_shape: tuple[int, int], hh: np.ndarray, min_size: tuple[int, int] | None
) -> None:
    """Shared checks: 2 km grid matches the SAR grid, scene large enough, SAR not empty."""
    expected = (shape[0] // COARSE_FACTOR, shape[1] // COARSE_FACTOR)
    if any(abs(c - e) > 1 for c, e in zip(coarse_shape, expected)) or min(coarse_shape) < 1:
        raise SceneError(
            path,
            f"2 km grid {coarse_shape} does not fit the SAR grid {shape} "
            f"(expected about {expected}, 25 SAR pixels per cell)",
            "the file is damaged or not an AI4Arctic scene",
        )
    if min_size is not None and (shape[0] < min_size[0] or shape[1] < min_size[1]):
        raise SceneError(
            path,
            f"scene is {shape[0]}x{shape[1]} pixels, smaller than the {min_size[0]}x{min_size[1]} asked for",
            "use a smaller patch/tile size or leave this scene out",
        )
    if not np.any(np.isfinite(hh) & (hh != 0)):
        raise SceneError(
            path, "SAR (nersc_sar_primary) is all zero or NaN", "the scene holds no radar data; leave it out"
        )


def read_charts(path: str | Path, shape: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """SIC/SOD/FLOE (uint8) of a ready-to-train file or a ``_prep_reference.nc`` file."""
    path = Path(path)
    with open_scene_file(path) as ds:
        check_layout(ds, path, CHART_LAYOUT, "chart")
        charts = load_charts(ds, path)
    check_chart_shape(path, charts, shape, "scene", "the reference belongs to another scene; check the file names")
    return charts


def check_chart_shape(
    path: Path, charts: Mapping[str, np.ndarray], shape: tuple[int, int] | None, against: str, remedy: str
) -> None:
    """A :class:`SceneError` when the charts of ``path`` are not ``shape`` (that of the ``against``)."""
    found = charts["SIC"].shape
    if shape is not None and found != tuple(shape):
        raise SceneError(path, f"charts are {found[0]}x{found[1]} but the {against} is {shape[0]}x{shape[1]}", remedy)


def resolve_reference(path: Path, key: str, reference: str | Path | bool | None) -> Path | None:
    """The reference file to join: a given path, the sibling ``<key>_prep_reference.nc``, or none."""
    if reference is None or reference is False:
        return None
    if reference is True:
        sibling = path.parent / reference_name(key)
        return sibling if sibling.is_file() else None
    return Path(reference)


def read_prep_scene(
    path: Path, name: SceneName, *, reference: str | Path | bool | None = True, min_size: tuple[int, int] | None = None
) -> Scene:
    """Read a ready-to-train (``_prep.nc``) file whose name says ``name``, joining the test
    reference when asked."""
    with open_scene_file(path) as ds:
        return build_scene(path, name, load_prep(ds, path, SAR_VARIABLES), reference, min_size)


def load_prep(ds: xr.Dataset, path: Path, sar_names: Sequence[str]) -> SceneContent:
    """Check an open ``_prep.nc`` file's layout and load its ``sar_names`` 80 m variables, the
    2 km variables, the tie points, its charts (if any) and attributes."""
    check_layout(ds, path, READY_LAYOUT, "ready-to-train")
    in_file = [chart for chart in CHART_NAMES if chart in ds.variables]
    if in_file:
        check_layout(ds, path, CHART_LAYOUT, "ready-to-train")
    return SceneContent(
        kind="ready" if in_file else "test",
        sar={n: load_variable(ds, n, path, np.float32) for n in sar_names},
        coarse={n: load_variable(ds, n, path, np.float32) for n in COARSE_VARIABLES},
        latitude=load_variable(ds, LATITUDE, path, np.float64),
        longitude=load_variable(ds, LONGITUDE, path, np.float64),
        charts=load_charts(ds, path, in_file),
        attrs=dict(ds.attrs),
    )


def build_scene(
    path: Path,
    name: SceneName,
    content: SceneContent,
    reference: str | Path | bool | None,
    min_size: tuple[int, int] | None,
    masked: MaskedPixels | None = None,
) -> Scene:
    """Check what a reader loaded, mask or fill its values that are not finite (:mod:`.nonfinite`;
    ``masked``: the 80 m pixels to mask when ``content.sar`` holds only some variables), join the test
    reference when the file has no charts, make the Scene."""
    tie_points = {"latitude": content.latitude, "longitude": content.longitude}
    non_finite, pixels = repair_inputs(path, content.sar, content.coarse, tie_points, masked)
    hh = content.sar["nersc_sar_primary"]
    check_scene(path, hh.shape, content.coarse["btemp_6_9h"].shape, hh, min_size)
    charts = content.charts
    if not charts:
        ref_path = resolve_reference(path, name.key, reference)
        if ref_path is not None:
            charts = read_charts(ref_path, hh.shape)
    for values in charts.values() if pixels is not None else ():  # no SAR data: no chart (.nonfinite)
        values[pixels] = IGNORE_INDEX
    return Scene(
        scene_id=name.key,
        provider=name.provider,
        date=name.time,
        kind=content.kind,
        source=path,
        sar=content.sar,
        coarse=content.coarse,
        latitude=content.latitude,
        longitude=content.longitude,
        charts=charts,
        attrs=content.attrs,
        non_finite=non_finite,
    )
