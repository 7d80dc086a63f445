"""The scene loop of evaluate and predict: open each file, chart it, hand the result to sinks.

:func:`chart_scenes` opens each scene file (tile by tile,
:func:`~seaice_mlflow.tasks.autoice.files.windowed.open_scene`), charts it with the model(s) and
hands the scene (its id, SAR, reference charts when it has them) and the
:class:`~seaice_mlflow.core.engine.ChartPrediction` to every sink in turn. A file that cannot be
read or charted is recorded as ``failed`` and the loop goes on; each file's :class:`SceneOutcome`
goes to ``on_scene`` as soon as it is known. What differs between the commands (the status of a
charted scene, their messages, whether scenes without reference charts are skipped) is a
:class:`ChartingRules`.

A sink is a :class:`SceneSink`: entered before the first scene and left after the last one, so a
sink that writes one file for all scenes (:class:`UploadSink`) leaves nothing behind when the loop
fails (no scene could be charted).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Literal, TypeVar

import torch

from seaice_mlflow.core.engine import ChartPrediction
from seaice_mlflow.core.errors import SceneError, SeaIceError
from seaice_mlflow.tasks.autoice import plots
from seaice_mlflow.tasks.autoice.ensemble import SceneCharter
from seaice_mlflow.tasks.autoice.files.naming import parse_scene_name
from seaice_mlflow.tasks.autoice.files.windowed import open_scene
from seaice_mlflow.tasks.autoice.products import masked
from seaice_mlflow.tasks.autoice.scene import Scene
from seaice_mlflow.tasks.autoice.upload import UploadPackageWriter

#: The status of a scene that went through every sink: evaluate scores it, predict writes it.
DoneStatus = Literal["scored", "written"]
SceneStatus = Literal[DoneStatus, "skipped", "failed"]


@dataclass
class SceneOutcome:
    """What happened to one file: charted (``scored``, ``written``), ``skipped`` or ``failed``."""

    file: Path
    status: SceneStatus
    message: str = ""
    scene_id: str = ""
    seconds: float = 0.0
    outputs: list[Path] = field(default_factory=list)  # per-scene files of the sinks, in sink order


Status = TypeVar("Status", bound=SceneStatus)  # the statuses a command's outcomes can have


@dataclass
class Outcomes(Generic[Status]):
    """The outcomes of a loop, first file first."""

    outcomes: list[SceneOutcome]

    def having(self, status: Status) -> list[SceneOutcome]:
        return [o for o in self.outcomes if o.status == status]


@dataclass(frozen=True)
class ChartingRules:
    """What a command that charts scenes says and decides."""

    done: DoneStatus  # the status of a scene every sink took
    verb: str  # "scene ... was already <verb> from another file"
    repeat_remedy: str  # the remedy for a scene given twice
    out_of_memory: str  # the remedy when a scene does not fit in memory
    nothing_done: Callable[[Sequence[Path], Sequence[SceneOutcome]], str]  # the error when no scene was charted
    without_charts: str = ""  # when set, scenes without reference charts are skipped with this message


class SceneSink(ABC):
    """Takes each charted scene; a context manager entered before the first scene."""

    def __enter__(self) -> SceneSink:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @abstractmethod
    def add(self, scene: Scene, prediction: ChartPrediction) -> list[Path]:
        """Take one scene and its prediction; returns the files written for this scene alone."""


class UploadSink(SceneSink):
    """The AutoICE ``upload_package.nc``, scene by scene (charts not masked, as the challenge asks);
    the file appears only when the loop succeeds."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._stack = ExitStack()

    def __enter__(self) -> UploadSink:
        self.writer = self._stack.enter_context(UploadPackageWriter(self.path))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.__exit__(*exc)

    def add(self, scene: Scene, prediction: ChartPrediction) -> list[Path]:
        self.writer.add(scene.scene_id, prediction.charts)
        return []


class QuicklookSink(SceneSink):
    """A quicklook PNG per scene: HH, the predicted charts and, when the scene has them, its
    reference charts. ``blank_outside`` draws the charts blank (255) where the scene has no SAR data,
    as the chart products hold them."""

    def __init__(self, folder: Path, name: Callable[[str], str], blank_outside: bool = False):
        self.folder, self.name, self.blank_outside = Path(folder), name, blank_outside

    def add(self, scene: Scene, prediction: ChartPrediction) -> list[Path]:
        charts = prediction.charts
        if self.blank_outside:
            valid = scene.sar_valid
            charts = {c: masked(values, valid) for c, values in charts.items()}
        figure = plots.quicklook(
            scene.sar["nersc_sar_primary"],
            charts,
            scene.charts or None,
            f"{scene.scene_id} ({Path(scene.source).name})",
        )
        return [plots.save(figure, self.folder / self.name(scene.scene_id), dpi=80)]


def scene_key(path: Path) -> str:
    """The scene id a file's name gives, or ``""`` when the name is not an AI4Arctic one."""
    try:
        return parse_scene_name(path).key
    except SeaIceError:
        return ""


def skipped_file(path: Path, skip: Callable[[Path], str] | None) -> SceneOutcome | None:
    """The ``skipped`` outcome of a file that ``skip`` says need not be charted (its products exist), or None."""
    reason = skip(path) if skip is not None else ""
    return SceneOutcome(path, "skipped", reason, scene_key(path)) if reason else None


def chart_scenes(
    files: Iterable[Path],
    charter: SceneCharter,
    sinks: Sequence[SceneSink],
    rules: ChartingRules,
    with_scores: bool = False,
    on_scene: Callable[[SceneOutcome], None] | None = None,
    uncertainty: bool = False,
    skip: Callable[[Path], str] | None = None,
) -> list[SceneOutcome]:
    """Chart every file and hand each scene to ``sinks`` (see the module doc); a :class:`SeaIceError`
    (``rules.nothing_done``) when no scene could be charted. ``with_scores``: predictions carry
    probabilities (or SIC values) too, ``uncertainty``: per-pixel uncertainty layers. ``skip`` says why a
    file need not be charted (its products exist), or ``""``: such files are ``skipped`` without being
    opened, and a loop whose files were all skipped so succeeds."""
    files = list(files)
    outcomes: list[SceneOutcome] = []
    done: set[str] = set()
    kept = 0  # files skipped because their products exist
    with ExitStack() as stack:
        for sink in sinks:
            stack.enter_context(sink)
        for path in files:
            # a scene charted earlier in this loop is not skipped: chart_file reports the repeat
            outcome = skipped_file(path, skip) if scene_key(path) not in done else None
            if outcome is not None:
                kept += 1
            else:
                outcome = chart_file(path, charter, sinks, rules, with_scores, done, uncertainty)
            if outcome.status == rules.done:
                done.add(outcome.scene_id)
            outcomes.append(outcome)
            if on_scene is not None:
                on_scene(outcome)
        if not done and not kept:
            raise SeaIceError(rules.nothing_done(files, outcomes))
    return outcomes


def chart_file(
    path: Path,
    charter: SceneCharter,
    sinks: Sequence[SceneSink],
    rules: ChartingRules,
    with_scores: bool,
    done: set[str],
    uncertainty: bool = False,
) -> SceneOutcome:
    """One file through the model(s) and the sinks; ``done`` holds the scenes charted before."""
    started = time.perf_counter()
    try:
        with open_scene(path, reference=True) as scene:  # read tile by tile
            if rules.without_charts and not scene.has_charts:
                return SceneOutcome(path, "skipped", rules.without_charts, scene.scene_id)
            if scene.scene_id in done:
                raise SceneError(
                    path, f"scene {scene.scene_id} was already {rules.verb} from another file", rules.repeat_remedy
                )
            prediction = charter.predict_scene(scene, with_scores=with_scores, uncertainty=uncertainty, progress=True)
            outputs = [file for sink in sinks for file in sink.add(scene, prediction)]
    except SeaIceError as err:
        return SceneOutcome(path, "failed", str(err))
    except (MemoryError, torch.OutOfMemoryError):
        return SceneOutcome(path, "failed", f"{path.name}: out of memory; {rules.out_of_memory}")
    note = scene.non_finite.note()  # input values the reader masked or filled, said with the scene
    return SceneOutcome(path, rules.done, note, scene.scene_id, time.perf_counter() - started, outputs)
