"""Lists given on the command line: repeated options and/or one string separated by commas or spaces.

The MLproject passes every parameter as one string (``-P model_uri="a,b"``), the ``seaice``
commands take repeated options (``--model-uri a --model-uri b``); both read alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path


def split_values(values: str | Iterable[str]) -> list[str]:
    """Values (model URIs, paths) given as repeated options and/or one string separated by commas
    or whitespace: the MLproject passes one string."""
    items = [values] if isinstance(values, str) else list(values)
    return [part for item in items for part in re.split(r"[\s,]+", item.strip()) if part]


def split_paths(values: str | Iterable[str]) -> list[str]:
    """:func:`split_values` for paths, except that a value naming an existing file or folder is
    kept whole (its name may hold a space or comma)."""
    out: list[str] = []
    for item in [values] if isinstance(values, str) else values:
        item = item.strip()
        out.extend([item] if item and Path(item).exists() else split_values(item))
    return out
