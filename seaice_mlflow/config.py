"""Defaults of every command: the single source for click options, MLproject and logged params.

Defaults are the good settings for real data, not toy ones; the ``main`` pipeline's demo
profile scales them down explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PreprocessDefaults:
    out: str = "outputs/store"
    downsample: int = 1
    variables: str = "all"
    val_scenes: int = 10  # as the starter pack
    val_list: str = ""
    workers: int = 2
    overwrite: bool = False
    seed: int = 0


PREPROCESS = PreprocessDefaults()
