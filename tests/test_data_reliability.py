"""Issue 15, data side: bad chart classes, impossible file dates, split sizes checked before any
conversion, all-bad folders, a content-defined store digest, unwritable --out, and pool workers
that die with their parent."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import netCDF4
import psutil
import pytest
from click.testing import CliRunner

from seaice_mlflow.cli import cli
from seaice_mlflow.core.errors import ParameterError, SceneError
from seaice_mlflow.tasks.autoice.conversion import PreprocessError
from seaice_mlflow.tasks.autoice.files.inspect import inspect_file
from seaice_mlflow.tasks.autoice.files.reader import read_scene
from seaice_mlflow.tasks.autoice.store import MANIFEST, Store
from tests.conftest import prep_files
from tests.conftest import run_preprocess as run

IMPOSSIBLE = "20201399T999999_dmi_prep.nc"


def folder(tmp_path: Path, *sources: Path, name: str = "data") -> Path:
    """A data folder holding links to ``sources`` (files, or every file of folders)."""
    data = tmp_path / name
    data.mkdir()
    for source in sources:
        for path in sorted(source.iterdir()) if source.is_dir() else [source]:
            (data / path.name).symlink_to(path)
    return data


def with_bad_classes(src: Path, dst: Path) -> Path:
    """A copy of a ready-to-train file with SIC 42 and SOD 9 in a few pixels."""
    shutil.copy(src, dst)
    with netCDF4.Dataset(dst, "a") as ds:
        ds["SIC"][0, :3] = 42
        ds["SOD"][1, 0] = 9
    return dst


# --- D19: chart classes outside the class tables ---------------------------------------------


def test_out_of_range_classes_are_bad_for_inspect_and_preprocess(ready_dir, tmp_path):
    good, other = prep_files(ready_dir)
    data = folder(tmp_path, good)
    bad = with_bad_classes(other, data / other.name)
    report = inspect_file(bad)
    assert not report.ok
    assert "SIC 42 (valid 0-10)" in report.problem and "SOD 9 (valid 0-5)" in report.problem
    assert "255 = masked" in report.problem and bad.name in report.problem
    result = run(data, tmp_path / "store")
    assert [s["scene_id"] for s in result.manifest["scenes"]] == [good.name[:19]]
    [failure] = result.failed
    assert failure["file"] == bad.name and "SOD 9 (valid 0-5)" in failure["problem"]


# --- D10: a file name with an impossible date ------------------------------------------------


def test_impossible_date_in_a_name_is_a_bad_file_not_a_crash(ready_dir, tmp_path):
    data = folder(tmp_path, ready_dir)
    shutil.copy(prep_files(ready_dir)[0], data / IMPOSSIBLE)
    with pytest.raises(SceneError, match=r"20201399T999999 in the file name is not a real date"):
        read_scene(data / IMPOSSIBLE)
    report = inspect_file(data / IMPOSSIBLE)
    assert not report.ok and "not a real date" in report.problem
    result = run(data, tmp_path / "store", val_scenes=1)
    assert len(result.manifest["scenes"]) == 2
    assert [f["file"] for f in result.failed] == [IMPOSSIBLE]


# --- D14: split sizes checked before converting; failures named as the cause -----------------


def test_too_many_validation_scenes_fail_before_any_conversion(ready_dir, test_dir, tmp_path):
    data = folder(tmp_path, ready_dir, test_dir)  # 2 training scenes + 2 test scenes with references
    out = tmp_path / "store"
    with pytest.raises(ParameterError, match=r"option --val-scenes: asked for 2 .* only 2 training scenes"):
        run(data, out, val_scenes=2)
    val_list = tmp_path / "val.txt"
    val_list.write_text(prep_files(test_dir)[0].name[:19] + "\n")  # a test scene is no training scene
    with pytest.raises(ParameterError, match=r"option --val-list: .* not training scenes"):
        run(data, out, val_list=val_list)
    assert not out.exists()  # nothing converted


def test_failed_files_are_named_when_they_leave_too_few_training_scenes(ready_dir, tmp_path):
    data = folder(tmp_path, ready_dir)
    (data / "20200101T000000_dmi_prep.nc").write_bytes(b"truncated")
    with pytest.raises(
        ParameterError,
        match=r"option --val-scenes: .*only 2 training scenes.*"
        r"1 file\(s\) failed.*20200101T000000_dmi_prep.nc",
    ):
        run(data, tmp_path / "store", val_scenes=2)
    assert not (tmp_path / "store" / MANIFEST).exists()


# --- D15: nothing converted --------------------------------------------------------------------


def test_a_folder_of_only_bad_files_writes_no_store(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "20200101T000000_dmi_prep.nc").write_bytes(b"truncated")
    (data / IMPOSSIBLE).write_bytes(b"truncated")
    out = tmp_path / "store"
    with pytest.raises(PreprocessError, match=r"none of the 2 scene file\(s\) .* could be converted") as caught:
        run(data, out)
    message = str(caught.value)
    assert "\n" not in message and IMPOSSIBLE in message and "20200101T000000_dmi_prep.nc" in message
    assert len(caught.value.failed) == 2
    assert not out.exists()


# --- D23: the store digest is defined by content -----------------------------------------------


def test_store_digest_depends_on_content_only(ready_dir, test_dir, tmp_path, monkeypatch):
    out = tmp_path / "store"
    run(ready_dir, out, val_scenes=1)
    digest, manifest = Store(out).digest, (out / MANIFEST).read_bytes()

    class Later:  # a no-op re-run an hour later
        @staticmethod
        def now(tz=None):
            from datetime import datetime

            return datetime(2031, 1, 1, tzinfo=tz)

    import seaice_mlflow.tasks.autoice.conversion as module

    monkeypatch.setattr(module, "datetime", Later)
    assert not run(ready_dir, out, val_scenes=1).processed
    assert Store(out).digest == digest and (out / MANIFEST).read_bytes() == manifest
    moved = folder(tmp_path, ready_dir, name="moved")  # the same files elsewhere
    run(moved, out, val_scenes=1)
    assert Store(out).digest == digest
    run(ready_dir, out, val_scenes=1, seed=5)  # another parameter
    assert Store(out).digest != digest
    more = folder(tmp_path, ready_dir, test_dir, name="more")  # another scene
    run(more, tmp_path / "more", val_scenes=1)
    assert Store(tmp_path / "more").digest != digest


# --- D11: unwritable --out ----------------------------------------------------------------------


def test_out_below_a_file_fails_before_the_run(ready_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ParameterError, match=r"option --out: .* is a file"):
        run(ready_dir, blocker / "store")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(
        cli,
        ["preprocess", "--data-dir", str(ready_dir), "--out", str(blocker / "store")],
        env={"MLFLOW_TRACKING_URI": uri},
    )
    assert result.exit_code == 1 and "option --out:" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "mlflow.db").exists()  # checked before the MLflow run starts


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_in_a_read_only_folder(ready_dir, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(ParameterError, match=r"option --out: .* cannot be written"):
        run(ready_dir, locked / "store")


# --- D4: pool workers die with their parent -----------------------------------------------------


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """The processes still running (zombies waiting for a reaper count as ended)."""
    running = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
        except psutil.NoSuchProcess:
            pass
    return running


@pytest.mark.parametrize("kernel_signal", [True, False], ids=["prctl", "watchdog"])
def test_workers_die_with_a_killed_parent(ready_dir, tmp_path, kernel_signal):
    marker = tmp_path / "converting"
    patch = "" if kernel_signal else "workers.set_parent_death_signal = lambda sig: False"
    code = textwrap.dedent(f"""
        import pathlib, time
        from seaice_mlflow.tasks.autoice import workers
        from seaice_mlflow.tasks.autoice.conversion import preprocess
        from seaice_mlflow.tasks.autoice.files.variables import SCENE_VARIABLES
        {patch}
        def hold(status, info):  # the pool is up: stay here until killed
            pathlib.Path({str(marker)!r}).touch()
            time.sleep(60)
        preprocess({str(ready_dir)!r}, {str(tmp_path / "store")!r}, downsample=1, variables=SCENE_VARIABLES,
                   val_scenes=0, val_list=None, workers=2, overwrite=False, seed=0, on_scene=hold)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    children: list[psutil.Process] = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None and not marker.exists():
            time.sleep(0.02)
        assert marker.exists(), "preprocess did not start converting"
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 5
        while alive(children) and time.time() < deadline:
            time.sleep(0.05)
        assert not alive(children), "pool workers outlived their killed parent"
    finally:
        proc.kill()
        for child in alive(children):
            child.kill()
