"""Charts for new scenes: a chart product and a quicklook per scene, optionally the upload package.

Scenes are ready-to-train or test ``_prep.nc`` files or raw files, given one by one or as
folders. A scene that cannot be read or charted is reported and skipped; the others are written.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from seaice_mlflow.data.naming import find_scene_files
from seaice_mlflow.data.windowed import open_scene
from seaice_mlflow.errors import SceneError, SeaIceError
from seaice_mlflow.inference.ensemble import SceneCharter
from seaice_mlflow.inference.products import (
    chart_dataset,
    product_name,
    quicklook_name,
    write_chart_product,
    write_quicklook,
)
from seaice_mlflow.scoring.upload import UPLOAD_PACKAGE, UploadPackageWriter

PredictStatus = Literal["written", "failed"]


@dataclass
class PredictOutcome:
    """What happened to one file: ``written`` or ``failed``."""

    file: Path
    status: PredictStatus
    message: str = ""
    scene_id: str = ""
    outputs: list[Path] = field(default_factory=list)  # chart product, quicklook
    seconds: float = 0.0


@dataclass
class PredictionResult:
    outcomes: list[PredictOutcome] = field(default_factory=list)
    upload_package: Path | None = None

    def having(self, status: PredictStatus) -> list[PredictOutcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def outputs(self) -> list[Path]:
        files = [p for o in self.having("written") for p in o.outputs]
        return files + ([self.upload_package] if self.upload_package else [])


def split_values(values: str | Iterable[str]) -> list[str]:
    """Values (model URIs, paths) given as repeated options and/or one string separated by commas
    or whitespace: the MLproject passes one string."""
    items = [values] if isinstance(values, str) else list(values)
    return [part for item in items for part in re.split(r"[\s,]+", item.strip()) if part]


def split_paths(values: str | Iterable[str]) -> list[str]:
    """:func:`split_values` for paths, except that a value naming an existing file or folder is
    kept whole (its name may hold a space or comma)."""
    out: list[str] = []
    for item in [values] if isinstance(values, str) else values:
        item = item.strip()
        out.extend([item] if item and Path(item).exists() else split_values(item))
    return out


def expand_scene_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Scene files given directly, plus the scene files (not references) of given folders; a path
    that does not exist is kept (it is reported as missing when predicted)."""
    out: list[Path] = []
    for path in map(Path, paths):
        for file in find_scene_files(path) if path.is_dir() else [path]:
            if file not in out:
                out.append(file)
    return out


def predict_files(charter: SceneCharter, files: Iterable[Path], out: str | Path,
                  provenance: Mapping[str, object], probabilities: bool = False, upload_package: bool = False,
                  on_scene: Callable[[PredictOutcome], None] | None = None) -> PredictionResult:
    """Chart every file into ``out`` (``<scene_id>_charts.nc`` and ``.png``, ``upload_package.nc``)."""
    out = Path(out)
    files = list(files)
    result = PredictionResult()
    done: set[str] = set()
    package_path = out / UPLOAD_PACKAGE
    with UploadPackageWriter(package_path) if upload_package else nullcontext() as package:
        for path in files:
            started = time.perf_counter()
            try:
                with open_scene(path, reference=True) as scene:  # read tile by tile
                    if scene.scene_id in done:
                        raise SceneError(path, f"scene {scene.scene_id} was already charted from another file",
                                         "give each scene once")
                    prediction = charter.predict_scene(scene, with_scores=probabilities, progress=True)
                    dataset = chart_dataset(scene, prediction, {**provenance, "source_scene_kind": scene.kind},
                                            charter.sic_value)
                    product = write_chart_product(out / product_name(scene.scene_id), dataset)
                    quicklook = write_quicklook(out / quicklook_name(scene.scene_id), scene, dataset)
                    if package is not None:
                        package.add(scene.scene_id, prediction.charts)  # not masked, as the challenge asks
            except SeaIceError as err:
                outcome = PredictOutcome(path, "failed", str(err))
            except (MemoryError, torch.OutOfMemoryError):
                outcome = PredictOutcome(path, "failed", f"{path.name}: out of memory; use a smaller --tile or "
                                         "--batch, or leave out --probabilities")
            else:
                done.add(scene.scene_id)
                outcome = PredictOutcome(path, "written", "", scene.scene_id, [product, quicklook],
                                         time.perf_counter() - started)
            result.outcomes.append(outcome)
            if on_scene is not None:
                on_scene(outcome)
        if not done:
            raise SeaIceError(f"none of the {len(files)} scene file(s) could be charted"
                              + (f" ({result.outcomes[0].message})" if result.outcomes else
                                 "; give scene files (*_prep.nc or raw S1*_icechart_*.nc) or folders of them"))
    result.upload_package = package_path if upload_package else None
    return result
