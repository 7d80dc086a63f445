"""Per-epoch logging that outlives a tracking server going away.

Training must not stop, nor stall for minutes, because the server is restarted: each epoch's
metrics and checkpoint are sent with MLflow's retries cut short; when the server does not
answer they are kept (one warning line) and sent with the next epoch that gets through (one
line when it is back). The metrics keep their epoch's step and time. Before the final logging
(best model, quicklooks) a training that finished while the server was away waits for it, for
a bounded time (``SEAICE_TRACKING_WAIT`` seconds), then stops with one line saying how to resume.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from seaice_mlflow.core.defaults import TRACKING
from seaice_mlflow.tracking.runs import (
    HTTP_SETTINGS,
    TrackingUnavailable,
    connection_problem,
    http_patience,
    public_uri,
)

WAIT_VARIABLE = "SEAICE_TRACKING_WAIT"
SYSTEM_METRICS_LOGGER = "mlflow.system_metrics.system_metrics_monitor"


@contextmanager
def training_patience() -> Iterator[None]:
    """For a whole training: MLflow's calls give up after a few seconds of retries instead of
    minutes (a ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` of the user's own is kept), so that the system
    metrics thread stops early in an outage instead of holding up the end of the run, and stops
    quietly: :class:`EpochLog` says what happens."""
    logger = logging.getLogger(SYSTEM_METRICS_LOGGER)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        if HTTP_SETTINGS["retries"] in os.environ:
            yield
        else:
            with http_patience(TRACKING.training_retries, int(os.environ.get(HTTP_SETTINGS["timeout"], "120"))):
                yield
    finally:
        logger.setLevel(level)


def outage_wait_s() -> float:
    """How long a finished training waits for the server (``SEAICE_TRACKING_WAIT``, seconds)."""
    value = os.environ.get(WAIT_VARIABLE, "")
    try:
        return float(value) if value else TRACKING.outage_wait_s
    except ValueError:
        raise TrackingUnavailable(f"{WAIT_VARIABLE}={value!r} is not a number of seconds") from None


@dataclass
class EpochLog:
    """Metrics and checkpoint files of a training run's epochs, sent as soon as the server takes them."""

    echo: Callable[[str], None]
    resume_hint: str  # how to continue, for the line that gives up
    metrics: list[tuple[dict[str, float], int, int]] = field(default_factory=list)  # (metrics, step, ms)
    artifacts: dict[tuple[str, str], Path] = field(default_factory=dict)  # (folder, name) -> newest file
    away_since: int | None = None  # first epoch whose logging failed
    problem: str = ""  # why the last send failed

    def epoch(self, epoch: int, metrics: dict[str, float], checkpoint: Path | None) -> None:
        """Keep one epoch's metrics (and checkpoint) and send everything kept."""
        self.metrics.append((dict(metrics), epoch, int(time.time() * 1000)))
        if checkpoint is not None:
            self.artifacts[("checkpoints", checkpoint.name)] = checkpoint
        if not self.flush() and self.away_since is None:
            self.away_since = epoch
            self.echo(
                f"warning: the tracking server {public_uri(mlflow.get_tracking_uri())} does not answer "
                f"({self.problem}); training goes on, epoch {epoch + 1}'s metrics are kept and sent when "
                "it is back"
            )

    def flush(self) -> bool:
        """Send what is kept; False (keeping the rest) when the server does not take it."""
        retries = 0 if self.away_since is not None else TRACKING.epoch_retries  # while away: one try an epoch
        try:
            with http_patience(retries, TRACKING.epoch_timeout_s):
                while self.metrics:
                    metrics, step, timestamp = self.metrics[0]
                    mlflow.log_metrics(metrics, step=step, timestamp=timestamp)
                    self.metrics.pop(0)
                for key in list(self.artifacts):
                    mlflow.log_artifact(str(self.artifacts[key]), key[0])
                    del self.artifacts[key]
        except (MlflowException, OSError) as err:  # requests' errors are OSErrors
            self.problem = connection_problem(err)
            return False
        if self.away_since is not None:
            self.echo(f"the tracking server is back; sent what was kept since epoch {self.away_since + 1}")
            self.away_since = None
        return True

    def wait(self, seconds: float | None = None) -> None:
        """Block until everything kept is sent, for at most ``seconds``; then give up with
        :class:`TrackingUnavailable` naming how to resume."""
        seconds = outage_wait_s() if seconds is None else seconds
        deadline = time.monotonic() + seconds
        announced = False
        while not self.flush():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TrackingUnavailable(
                    f"the tracking server {public_uri(mlflow.get_tracking_uri())} did not come back within "
                    f"{seconds:g} s ({self.problem}); the checkpoints are kept: when it is back, {self.resume_hint}"
                )
            if not announced:
                self.echo(f"training is done; waiting up to {seconds:g} s for the tracking server to log the model")
                announced = True
            time.sleep(min(5.0, left))
