"""The tracking URI as users get it wrong, and a tracking server that goes away during training."""

import os
import queue
import subprocess
import sys
import threading
import time

import mlflow
import pytest
from click.testing import CliRunner

from seaice_mlflow.cli import cli
from seaice_mlflow.core.checkpoint import LAST
from seaice_mlflow.tracking.runs import TrackingUnavailable, resolve_tracking_uri
from tests.mlflow_server import TrackingServer, free_port
from tests.tiny_model import TINY_TRAIN

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
        assert mlflow.search_logged_models(filter_string=f"source_run_id = '{run.info.run_id}'", output_format="list")

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
