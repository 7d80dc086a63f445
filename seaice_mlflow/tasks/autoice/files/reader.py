"""Reading any AI4Arctic scene file: the dispatcher over file kinds (ready-to-train and test files
in :mod:`prep`, raw 40 m files in :mod:`raw`) and the reference charts of a folder for scoring.

Every problem with a user's file becomes a :class:`SceneError` that names the file, says what
is wrong and what to do; no bare traceback reaches the user.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seaice_mlflow.core.errors import SceneError
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES
from seaice_mlflow.tasks.autoice.files.naming import (
    PREP_PATTERN,
    RAW,
    RAW_PATTERN,
    REFERENCE,
    FileKind,
    parse_scene_name,
    parsed_names,
    prep_name,
)
from seaice_mlflow.tasks.autoice.files.netcdf import check_file, open_scene_file
from seaice_mlflow.tasks.autoice.files.prep import check_chart_shape, read_charts, read_prep_scene
from seaice_mlflow.tasks.autoice.files.raw import POLYGON_VARIABLE, read_raw_scene
from seaice_mlflow.tasks.autoice.scene import Scene


def read_scene(
    path: str | Path, *, reference: str | Path | bool | None = True, min_size: tuple[int, int] | None = None
) -> Scene:
    """Read any scene file (ready, test or raw) into a :class:`Scene` with 80 m charts.

    ``reference``: True joins the sibling ``<key>_prep_reference.nc`` when there is one,
    a path joins that file, False/None reads inputs only.
    """
    path = Path(path)
    check_file(path)  # a missing path is "does not exist", whatever its name
    name = parse_scene_name(path)
    if name.file_kind == REFERENCE:
        raise SceneError(
            path,
            "is a test reference (charts only), not a scene",
            f"read {prep_name(name.key)} instead; its reference is joined automatically",
        )
    read = read_raw_scene if name.file_kind == RAW else read_prep_scene
    return read(path, name, reference=reference, min_size=min_size)


def find_references(directory: str | Path) -> dict[str, Path]:
    """Scene key -> file holding its reference charts, for every scene in ``directory``.

    Test references (``_prep_reference.nc``) come first; ready-to-train files with charts and raw
    files with an ice chart also count (the raw chart is converted on reading).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise SceneError(directory, "is not a folder", "give the folder with the reference charts")
    found: dict[str, Path] = {}
    named = [p for p in sorted(directory.glob("*.nc")) if PREP_PATTERN.match(p.name) or RAW_PATTERN.match(p.name)]
    for path, name in parsed_names(named):
        if name.file_kind == REFERENCE:
            found[name.key] = path
        elif name.key not in found and _holds_chart(path, name.file_kind):
            found[name.key] = path
    return found


def _holds_chart(path: Path, file_kind: FileKind) -> bool:
    with open_scene_file(path) as ds:
        names = (POLYGON_VARIABLE,) if file_kind == RAW else CHART_NAMES
        return all(n in ds.variables for n in names)


def reference_charts(path: str | Path, shape: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """The 80 m reference charts held by ``path`` (reference, ready-to-train or raw file)."""
    path = Path(path)
    if parse_scene_name(path).file_kind == RAW:
        charts = read_scene(path, reference=False).charts
        check_chart_shape(path, charts, shape, "prediction", "the prediction belongs to another scene")
        return charts
    return read_charts(path, shape)
