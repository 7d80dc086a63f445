"""The scene loop shared by evaluate and predict, with a fake model and fake sinks."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Sequence
from pathlib import Path

import pytest

from seaice_mlflow.core.engine import ChartPrediction
from seaice_mlflow.core.errors import Interrupted, SeaIceError
from seaice_mlflow.core.interrupts import signals_interrupt
from seaice_mlflow.tasks.autoice.charting import ChartingRules, SceneOutcome, SceneSink, chart_scenes
from tests.conftest import prep_files


class FakeCharter:
    """Charts nothing; records which scenes it was asked for."""

    def __init__(self):
        self.asked: list[tuple[str, bool]] = []

    def predict_scene(
        self, scene, with_scores: bool = False, progress: bool = False, uncertainty: bool = False
    ) -> ChartPrediction:
        self.asked.append((scene.scene_id, with_scores))
        return ChartPrediction({})


class FakeSink(SceneSink):
    """Records what it is given and how it is left; writes one (pretend) file per scene."""

    def __init__(self, name: str):
        self.name, self.added, self.entered, self.left_with = name, [], False, "open"

    def __enter__(self) -> FakeSink:
        self.entered = True
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.left_with = exc_type

    def add(self, scene, prediction) -> list[Path]:
        self.added.append((scene.scene_id, scene.has_charts, prediction))
        return [Path(f"{self.name}-{scene.scene_id}")]


def nothing(files: Sequence[Path], outcomes: Sequence[SceneOutcome]) -> str:
    return f"nothing done of {len(files)}"


RULES = ChartingRules(
    done="scored",
    verb="tested",
    repeat_remedy="give it once",
    out_of_memory="use less",
    nothing_done=nothing,
    without_charts="no charts here",
)


def test_each_scene_goes_through_every_sink_and_bad_files_are_outcomes(ready_dir, tmp_path):
    good = prep_files(ready_dir)
    bad = tmp_path / "20990101T000000_dmi_prep.nc"
    bad.write_bytes(b"not netcdf")
    again = tmp_path / "again" / good[0].name
    again.parent.mkdir()
    shutil.copyfile(good[0], again)
    charter, sinks, seen = FakeCharter(), [FakeSink("a"), FakeSink("b")], []
    outcomes = chart_scenes([*good, bad, again], charter, sinks, RULES, with_scores=True, on_scene=seen.append)
    assert seen == outcomes and [o.status for o in outcomes] == ["scored", "scored", "failed", "failed"]
    ids = [o.scene_id for o in outcomes[:2]]
    assert charter.asked == [(i, True) for i in ids]
    assert [o.outputs for o in outcomes[:2]] == [[Path(f"a-{i}"), Path(f"b-{i}")] for i in ids]
    assert "cannot be opened as netCDF" in outcomes[2].message
    assert f"scene {ids[0]} was already tested from another file" in outcomes[3].message
    assert "give it once" in outcomes[3].message
    for sink in sinks:
        assert sink.entered and sink.left_with is None and [a[0] for a in sink.added] == ids


def test_scenes_without_charts_are_skipped_and_nothing_done_fails_inside_the_sinks(test_dir, tmp_path):
    scene = tmp_path / prep_files(test_dir)[0].name
    shutil.copyfile(prep_files(test_dir)[0], scene)  # without its reference: no charts
    sink, seen = FakeSink("a"), []
    with pytest.raises(SeaIceError, match="nothing done of 1"):
        chart_scenes([scene], FakeCharter(), [sink], RULES, on_scene=seen.append)
    [outcome] = seen
    assert outcome.status == "skipped" and outcome.message == "no charts here" and outcome.scene_id
    assert not sink.added and sink.left_with is SeaIceError  # a sink can drop what it began

    charted = chart_scenes(
        [scene],
        FakeCharter(),
        [sink],
        ChartingRules(done="written", verb="charted", repeat_remedy="", out_of_memory="", nothing_done=nothing),
    )
    assert [o.status for o in charted] == ["written"] and sink.added[0][1] is False


class SignalledSink(FakeSink):
    """Sends ``signum`` to this process while it takes its first scene (a scheduler's SIGTERM, Ctrl-C)."""

    def __init__(self, signum: int):
        super().__init__("signalled")
        self.signum = signum

    def add(self, scene, prediction) -> list[Path]:
        os.kill(os.getpid(), self.signum)
        return super().add(scene, prediction)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupt_stops_the_loop_instead_of_failing_one_scene(ready_dir, signum):
    sink, seen = SignalledSink(signum), []
    with pytest.raises(Interrupted) as stopped, signals_interrupt():
        chart_scenes(prep_files(ready_dir), FakeCharter(), [sink], RULES, on_scene=seen.append)
    assert stopped.value.exit_code == 128 + signum
    assert seen == [] and sink.added == [] and sink.left_with is Interrupted  # no scene after it, none failed
