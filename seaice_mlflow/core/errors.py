"""User-facing errors: each names the file or parameter, what is wrong and what to do."""

from __future__ import annotations

import os
from pathlib import Path


class SeaIceError(Exception):
    """Base of the errors the command line reports as one clear line (no traceback)."""


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type when empty), at most ``limit`` characters:
    what a library said, quoted inside one of our messages."""
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:limit]


class SceneError(SeaIceError):
    """A scene file cannot be used: not netCDF, truncated, wrong variables or dims, empty SAR."""

    def __init__(self, path: str | Path, problem: str, remedy: str = ""):
        self.path = Path(path)
        self.problem = problem
        self.remedy = remedy
        text = f"{self.path.name}: {problem}"
        super().__init__(f"{text}. {remedy}" if remedy else text)


def looked_at(path: str | Path) -> str:
    """``path`` as an error about it shows it: the absolute path looked at, then, when ``path`` is
    relative, how it was given. Under `mlflow run` (``MLFLOW_RUN_ID`` set) a step runs in the project
    folder, not where `mlflow run` was started, so the message says that too."""
    if Path(path).is_absolute():
        return str(path)
    where = f"{os.path.abspath(path)} (given as {path}"
    if os.environ.get("MLFLOW_RUN_ID"):
        where += "; under `mlflow run` a relative path starts in the project folder: give an absolute path"
    return where + ")"


def option_name(name: str) -> str:
    """The command-line flag of a parameter: ``batch_size`` (MLproject, Python) -> ``--batch-size``."""
    return "--" + name.removeprefix("--").replace("_", "-")


class ParameterError(SeaIceError):
    """A command-line or MLproject parameter has an unusable value; the message names its flag."""

    def __init__(self, name: str, problem: str):
        self.name = name.removeprefix("--").replace("-", "_")
        self.problem = problem
        super().__init__(f"option {option_name(name)}: {problem}")


class Interrupted(KeyboardInterrupt):
    """The command was stopped by SIGTERM (what schedulers send) or SIGINT (Ctrl-C); its MLflow
    run ends KILLED and the exit status is 128 + the signal number, as shells report it.

    Not a :class:`SeaIceError`, nor an ``Exception``: a loop that records one file's failure and goes
    on (``except SeaIceError``, a reader's ``except Exception``) must not take the interrupt for that
    file's fault, so it ends the command wherever it lands, as Python's own ``KeyboardInterrupt`` does
    (Optuna and `mlflow.projects` handle it as one: a trial FAILs, a step's process is cancelled). The
    command line reports it as one line, like a :class:`SeaIceError`."""

    def __init__(self, signal_name: str, exit_code: int, message: str = ""):
        self.signal_name, self.exit_code = signal_name, exit_code
        self.described = bool(message)  # says which command stopped, and what is kept
        super().__init__(message or f"interrupted by {signal_name}")

    def ended(self, command: str, run_id: str, then: str = "") -> Interrupted:
        """This interrupt as the message of ``command``, whose run ``run_id`` ends KILLED; ``then``: what is
        kept, or what to do next."""
        text = f"{command} interrupted by {self.signal_name}; run {run_id} ends KILLED"
        return Interrupted(self.signal_name, self.exit_code, f"{text}; {then}" if then else text)


class ModelSpecError(ParameterError, ValueError):
    """A model spec names an unknown architecture or has unusable options; the message names the option."""
