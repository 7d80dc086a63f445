"""SIGTERM and SIGINT as :class:`~seaice_mlflow.core.errors.Interrupted`, so that a command stopped by a
scheduler or by Ctrl-C ends its MLflow run KILLED and says how to go on, instead of leaving the
run RUNNING (SIGTERM's default) or printing only "Aborted!" (click's answer to Ctrl-C)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from seaice_mlflow.core.errors import Interrupted

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _raise_interrupted(signum: int, frame) -> None:
    raise Interrupted(signal.Signals(signum).name, 128 + signum)


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """Inside, SIGTERM and SIGINT raise :class:`Interrupted` in the main thread; the previous
    handlers come back afterwards. Elsewhere than the main thread nothing changes (Python
    delivers signals to the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_interrupted) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
