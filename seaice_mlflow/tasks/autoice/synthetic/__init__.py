"""Synthetic AI4Arctic scenes in the exact real file layouts.

The generator (:mod:`.generate`) imports scipy and xarray; the choices ``seaice synth`` offers are
defined here and the generator is imported on first use, so that the command line starts without it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

FORMATS = ("ready", "raw")
SPLITS = ("train", "test")
MIN_SIZE = 50  # two 2 km cells
DEFAULT_SIZE = (256, 256)
SYNTH_WORKERS = 2  # the scenes of a folder are made in this many processes (CLI and pipeline)
#: Names of :mod:`.generate` exported here, imported on first use.
_GENERATED = ("SyntheticScene", "synthesize")


def __getattr__(name: str) -> Any:
    if name in _GENERATED:
        return getattr(import_module(".generate", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_SIZE", "FORMATS", "MIN_SIZE", "SPLITS", "SYNTH_WORKERS", "SyntheticScene", "synthesize"]
