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


class ParameterError(SeaIceError):
    """A command-line or MLproject parameter has an unusable value."""

    def __init__(self, name: str, problem: str):
        self.name = name
        super().__init__(f"parameter {name}: {problem}")
