"""The tracking URI as users get it wrong, and a tracking server that goes away during training."""

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import mlflow
import pytest
from click.testing import CliRunner

from seaice_mlflow.cli import cli
from seaice_mlflow.core.checkpoint import LAST
from seaice_mlflow.tasks.optical.synthetic import synthesize_photos
from seaice_mlflow.tracking.runs import (
    TAKEN_OVER_TAG,
    TrackingUnavailable,
    model_label,
    plural,
    resolve_tracking_uri,
    run_name,
    step_run,
)
from tests.mlflow_server import TrackingServer, free_port
from tests.tiny_model import TINY_TRAIN

EXPERIMENT = "tracking-test"

TINY = [*TINY_TRAIN]
#: Epochs of the outage test: the server stops after the first and is back before the last, or the
#: training waits for it at the end (SEAICE_TRACKING_WAIT); the resume trains the rest.
EPOCHS = 10


def test_an_unreachable_server_fails_in_seconds_naming_the_uri(train_store, tmp_path, monkeypatch):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["train", "--store", str(train_store), "--out", str(tmp_path), *TINY])
    assert time.monotonic() - started < 30  # MLflow's own retries took 4 min
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"MLFLOW_TRACKING_URI {uri}: the tracking server does not answer (Connection refused)" in result.output
    assert not (tmp_path / LAST).exists()


def test_a_relative_sqlite_uri_is_made_absolute_with_a_note(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///runs.db")
    absolute = f"sqlite:///{tmp_path.resolve() / 'runs.db'}"
    assert resolve_tracking_uri() == absolute
    assert os.environ["MLFLOW_TRACKING_URI"] == absolute  # what child processes (mlflow run steps) get
    assert "is relative; using" in capsys.readouterr().err


@pytest.mark.parametrize(("family", "experiment"), [("autoice", "seaice"), ("optical", "seaice-optical")])
def test_a_step_run_is_named_by_what_it_does_in_its_familys_experiment(family, experiment, tmp_path, monkeypatch):
    """The MLflow UI lists runs by name: a step names its run (MLflow gave random ones), in the experiment of
    its task family when none is chosen (the optical pipeline went to Default, its commands to seaice)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    name = run_name("optical_train" if family == "optical" else "train", "unet", "store-x4")
    with step_run("train", {"lr": 0.1}, name=name, family=family) as run:
        pass
    done = mlflow.get_run(run.info.run_id)
    assert mlflow.get_experiment(done.info.experiment_id).name == experiment
    assert done.info.run_name == name == f"{'optical train' if family == 'optical' else 'train'} unet store-x4"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "chosen")  # the user's choice wins
    with step_run("train", {}, family=family) as run:
        pass
    assert mlflow.get_experiment(run.info.experiment_id).name == "chosen"


def test_a_step_under_mlflow_run_renames_its_run_and_says_when_it_is_in_default(tmp_path, monkeypatch, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    created = mlflow.MlflowClient(uri).create_run("0", run_name="amusing-gnu-51")  # as `mlflow run` makes it
    monkeypatch.setenv("MLFLOW_RUN_ID", created.info.run_id)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "0")
    mlflow.set_experiment(experiment_id="0")  # as the step's process of `mlflow run` starts
    with step_run("optical_main", {}, name=run_name("optical_main", "demo"), family="optical") as run:
        assert run.info.run_id == created.info.run_id
    assert mlflow.get_run(run.info.run_id).info.run_name == "optical main demo"
    err = capsys.readouterr().err
    assert "is in MLflow's Default experiment" in err and "optical runs belong in seaice-optical" in err


@pytest.mark.parametrize(
    ("uris", "label"),
    [
        (["models:/m-0123456789abcdef0123456789abcdef"], "m-01234567"),
        (["models:/seaice-charts@champion"], "seaice-charts@champion"),
        (["models:/seaice-charts/3"], "seaice-charts/3"),
        (["runs:/0123456789abcdef0123456789abcdef/model"], "run 01234567"),
        (["/data/models/unet-x4/"], "unet-x4"),
        (["models:/a@champion", "models:/b@champion"], "2 models"),
    ],
)
def test_model_labels_of_run_names(uris, label):
    assert model_label(uris) == label and len(run_name("evaluate", label, "on", plural(1, "scene"))) <= 80


def test_a_relative_sqlite_uri_under_mlflow_run_elsewhere_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///runs.db")
    monkeypatch.setenv("MLFLOW_RUN_ID", "0123456789abcdef0123456789abcdef")  # created in another folder's runs.db
    with pytest.raises(
        TrackingUnavailable, match="is relative, and run 0123456789abcdef0123456789abcdef of `mlflow run` is not in"
    ):
        resolve_tracking_uri()


class Lines:
    """The lines a process writes to a pipe, read in a thread (so a test can wait for one)."""

    def __init__(self, pipe):
        self.seen: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe) -> None:
        for line in pipe:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r}; saw:\n{''.join(self.seen)[-3000:]}")

    def rest(self) -> str:
        while (line := self._queue.get(timeout=60)) is not None:
            self.seen.append(line)
        return "".join(self.seen)


def test_training_outlives_the_tracking_server_going_away(train_store, tmp_path, monkeypatch):
    server = TrackingServer(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.start())
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "outage")
    mlflow.set_tracking_uri(server.url)
    try:
        # the server goes away after the first epoch and comes back: nothing is lost
        out = tmp_path / "ckpt"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "SEAICE_TRACKING_WAIT": "300"}
        command = [
            sys.executable,
            "-m",
            "seaice_mlflow",
            "train",
            "--store",
            str(train_store),
            "--out",
            str(out),
            *TINY,
            "--epochs",
            str(EPOCHS),
            "--early-stopping",
            "0",
        ]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        stdout, stderr = Lines(proc.stdout), Lines(proc.stderr)
        stdout.wait_for(f"epoch 1/{EPOCHS}")
        server.stop()
        stderr.wait_for("does not answer")  # at once, not after minutes
        server.start()
        assert proc.wait(timeout=300) == 0, stderr.rest()[-3000:]
        err = stderr.rest()
        assert err.count("does not answer") == 1 and "is back" in err and "Traceback" not in err
        assert f"epoch {EPOCHS}/{EPOCHS}" in "".join(stdout.seen) + stdout.rest()
        [run] = mlflow.search_runs(experiment_names=["outage"], output_format="list")
        assert run.info.status == "FINISHED" and "best_val_combined" in run.data.metrics
        history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "train_loss")
        assert sorted(m.step for m in history) == list(range(EPOCHS))
        assert mlflow.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run.info.run_id}'",
            output_format="list",
        )

        # it does not come back in time: one line with the resume command, then the resume is marked
        gone = tmp_path / "gone"
        command[command.index(str(out))] = str(gone)
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**env, "SEAICE_TRACKING_WAIT": "2"}
        )
        stdout, stderr = Lines(proc.stdout), Lines(proc.stderr)
        stdout.wait_for(f"epoch 1/{EPOCHS}")
        server.stop()
        assert proc.wait(timeout=300) == 1
        err = stderr.rest()
        assert "did not come back within 2 s" in err and f"seaice train --resume {gone / LAST}" in err
        assert "Traceback" not in err
        server.start()
        left = [
            r
            for r in mlflow.search_runs(experiment_names=["outage"], output_format="list")
            if r.info.run_id != run.info.run_id
        ]
        resumed = CliRunner().invoke(cli, command[3:] + ["--resume", str(gone / LAST)])
        assert resumed.exit_code == 0, resumed.output
        assert mlflow.get_run(left[0].info.run_id).info.status == "KILLED"
    finally:
        server.stop()


def killed_command(command: str, request, out) -> tuple[list[str], list[str], str]:
    """The arguments of ``command`` to SIGKILL while it trains, of its re-run (tiny CPU settings), and the
    line it writes when it starts to train."""
    if command == "tune":
        fixed = "epochs=5,batches_per_epoch=2,batch_size=4,patch_size=64,unet_filters=8,8,16,16,workers=0,val_tile=64"
        args = ["tune", "--store", str(request.getfixturevalue("train_store")), "--out", str(out), "--trials", "1",
                "--space", "lr=1e-3:1e-2:log", "--fixed", fixed, "--device", "cpu"]  # fmt: skip
        return args, args, "trial 0:"
    if command == "study":
        args = ["study", "downsample", "--values", "1", "--profile", "smoke", "--fixed", "patch_size=32,val_tile=64",
                "--data-dir", str(request.getfixturevalue("ready_dir")), "--test-dir",
                str(request.getfixturevalue("test_dir")), "--out", str(out), "--device", "cpu"]  # fmt: skip
        return args, args, "epoch 1"
    photos = out.parent / "photos"
    synthesize_photos(photos, n_images=3, size=(96, 128), seed=2)
    args = ["optical", "train", "--data-dir", str(photos), "--out", str(out), "--batches-per-epoch", "2",
            "--batch-size", "2", "--patch-size", "64", "--workers", "0", "--val-tile", "128",
            "--device", "cpu"]  # fmt: skip
    return [*args, "--epochs", "50"], [*args, "--epochs", "1"], "epoch 1"


def running_runs(experiment: str, entry_point: str = "") -> list:
    """The RUNNING runs of ``experiment`` (of entry points ending in ``entry_point``)."""
    where = f"attributes.status = 'RUNNING' and tags.`seaice.entry_point` LIKE '%{entry_point}'"
    return mlflow.search_runs(experiment_names=[experiment], filter_string=where, output_format="list")


@pytest.mark.slow
@pytest.mark.parametrize("command", ["tune", "study", "optical train"])
def test_a_rerun_marks_the_runs_a_sigkilled_command_left_running_killed(command, request, tmp_path, tracking,
                                                                        monkeypatch):  # fmt: skip
    experiment = f"killed-{command.replace(' ', '-')}"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
    killed, again, training = killed_command(command, request, tmp_path / "out")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "seaice_mlflow", *killed], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
    Lines(proc.stdout).wait_for(training)
    deadline = time.monotonic() + 120
    while not running_runs(experiment, "train") and time.monotonic() < deadline:
        time.sleep(0.1)  # a tune's trial opens its train run a moment after it says so
    proc.send_signal(signal.SIGKILL)  # no chance to end its runs
    proc.wait(timeout=60)
    left = running_runs(experiment)
    assert any(r.data.tags["seaice.entry_point"].endswith("train") for r in left)  # with the runs above it
    result = CliRunner().invoke(cli, again)
    assert result.exit_code == 0, result.output
    assert f"{len(left)} run(s) a stopped" in result.output and "are marked KILLED" in result.output
    for run in left:
        ended = mlflow.get_run(run.info.run_id)
        assert ended.info.status == "KILLED" and ended.data.tags[TAKEN_OVER_TAG], ended.data.tags
    assert not running_runs(experiment)
