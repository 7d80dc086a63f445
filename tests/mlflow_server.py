"""A real `mlflow server` on 127.0.0.1 for tests: sqlite backend and artifacts in a folder,
started and stopped by its PID (process group), restartable on the same port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TrackingServer:
    """`mlflow server` whose database and artifacts live in ``folder``."""

    def __init__(self, folder: Path, port: int | None = None):
        self.folder, self.port = Path(folder), port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> str:
        command = [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            f"sqlite:///{self.folder / 'server.db'}",
            "--artifacts-destination",
            str(self.folder / "artifacts"),
            "--workers",
            "1",
        ]
        self.proc = subprocess.Popen(
            command, cwd=self.folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        try:
            wait_until_healthy(f"{self.url}/health", self.proc, timeout)
        except RuntimeError:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        stop_group(self.proc)
        self.proc = None


def wait_until_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Poll ``url`` until it answers 200; RuntimeError with the process's stderr if it exits first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args} exited: {proc.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def stop_group(proc: subprocess.Popen | None, timeout: float = 30) -> None:
    """SIGTERM to a process started with ``start_new_session`` and its children (a server, its
    uvicorn workers and job runner), by its PID, also when the process itself has ended and left
    children behind (a shell script's background server); waits until the group is gone."""
    if proc is None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:  # nothing of the group is left
        return
    if proc.poll() is None:
        proc.wait(timeout=timeout)
    deadline = time.time() + timeout
    while time.time() < deadline:  # the children of an ended process are not ours to wait for
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
