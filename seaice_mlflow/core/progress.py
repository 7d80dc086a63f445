"""Progress bars on a terminal only, so that log files get lines, not one long line of carriage returns.

A tqdm bar redraws one line with ``\\r``; written to a file (``nohup``, a batch scheduler's log,
``2>&1 | tee``) every redraw is kept and the whole progress becomes one line of thousands of
characters. Every bar of the project is :func:`progress_bar`, drawn only when stderr is a terminal;
what a log file needs to follow a long step is a line per step (``seaice train`` prints one per
epoch). MLflow draws its own artifact bars (``Downloading artifacts: 100%|...`` when a model is
loaded) without that check: :func:`quiet_bars_off_terminal`, called when a ``seaice`` command
starts, turns them off through ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR`` when stderr is not a
terminal (a value the user set is kept).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import IO, Any

from tqdm import tqdm

#: MLflow's switch for its artifact upload/download bars (``mlflow.environment_variables``).
MLFLOW_BARS = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def on_terminal(stream: IO | None = None) -> bool:
    """Whether ``stream`` (default: stderr, where bars go) is a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(
    iterable: Iterable | None = None,
    *,
    desc: str,
    unit: str,
    total: int | None = None,
    leave: bool = True,
    enabled: bool = True,
    **options: Any,
) -> tqdm:
    """A tqdm bar on stderr, drawn only when ``enabled`` and stderr is a terminal (otherwise it
    counts silently and passes ``iterable`` through)."""
    return tqdm(
        iterable, desc=desc, unit=unit, total=total, leave=leave, disable=not (enabled and on_terminal()), **options
    )


def quiet_bars_off_terminal() -> None:
    """Turn MLflow's artifact progress bars off when stderr is not a terminal, unless the user set
    ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``; child processes inherit the setting."""
    if not on_terminal():
        os.environ.setdefault(MLFLOW_BARS, "false")
