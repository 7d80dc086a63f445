"""User-facing errors: each names the file or parameter, what is wrong and what to do."""

from __future__ import annotations

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


def option_name(name: str) -> str:
    """The command-line flag of a parameter: ``batch_size`` (MLproject, Python) -> ``--batch-size``."""
    return "--" + name.removeprefix("--").replace("_", "-")


class ParameterError(SeaIceError):
    """A command-line or MLproject parameter has an unusable value; the message names its flag."""

    def __init__(self, name: str, problem: str):
        self.name = name.removeprefix("--").replace("-", "_")
        self.problem = problem
        super().__init__(f"option {option_name(name)}: {problem}")


class Interrupted(SeaIceError):
    """The command was stopped by SIGTERM (what schedulers send) or SIGINT (Ctrl-C); its MLflow
    run ends KILLED and the exit status is 128 + the signal number, as shells report it."""

    def __init__(self, signal_name: str, exit_code: int, message: str = ""):
        self.signal_name, self.exit_code = signal_name, exit_code
        super().__init__(message or f"interrupted by {signal_name}")


class ModelSpecError(ParameterError, ValueError):
    """A model spec names an unknown architecture or has unusable options; the message names the option."""
