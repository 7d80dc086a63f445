"""What the commands print for programs: ``--json`` output is strict JSON (RFC 8259).

Python's ``json`` writes ``NaN`` and ``Infinity`` for floats without a value (a spread over one
patch, the F1 of an absent class); ``jq``, JavaScript's ``JSON.parse`` and every strict parser
refuse them. Every ``--json`` output goes through :func:`echo_json`, which writes ``null`` there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import click


def finite_or_none(value: object) -> object:
    """``value`` with every float that is not finite (numpy's included) replaced by None, in nested
    mappings, lists and tuples; numpy scalars become Python numbers."""
    if isinstance(value, Mapping):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(item) for item in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(value: object, indent: int | None = None) -> str:
    """``value`` as strict JSON text: ``null`` for NaN and infinities (``allow_nan=False`` checks it)."""
    return json.dumps(finite_or_none(value), indent=indent, allow_nan=False)


def echo_json(value: object, indent: int | None = None) -> None:
    """Print ``value`` as strict JSON on stdout (progress and notes go to stderr)."""
    click.echo(json_text(value, indent))
