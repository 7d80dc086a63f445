"""Shared pieces of the benchmark scripts: cached synthetic data sets and printing."""

from __future__ import annotations

import json
from pathlib import Path

from seaice_mlflow.data.synthetic import synthesize

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench"


def synthetic_split(name: str, n_scenes: int, size: tuple[int, int], split: str, seed: int,
                    fmt: str = "ready") -> Path:
    """A folder of synthetic scenes, generated once and reused by later runs."""
    out = CACHE / f"{name}-{split}-{fmt}-{n_scenes}x{size[0]}x{size[1]}-s{seed}"
    done = out / ".complete"
    if not done.exists():
        synthesize(out, n_scenes=n_scenes, size=size, split=split, fmt=fmt, seed=seed)
        done.write_text(json.dumps({"n_scenes": n_scenes, "size": size, "split": split, "seed": seed}))
    return out


def quality_data(n_train: int = 8, n_test: int = 4, size: tuple[int, int] = (1000, 1000),
                 seed: int = 2026) -> tuple[Path, Path]:
    """The quality benchmark's data: training scenes and held-out test scenes (with references)."""
    train = synthetic_split("quality", n_train, size, "train", seed)
    test = synthetic_split("quality", n_test, size, "test", seed + 1000)
    return train, test


def print_scores(label: str, scores) -> None:
    """One line: combined, SIC, SOD, FLOE of a :class:`Scores`."""
    c = scores.charts
    print(f"{label:<34} combined {scores.combined:7.3f}   SIC {c['SIC']:7.3f}   "
          f"SOD {c['SOD']:7.3f}   FLOE {c['FLOE']:7.3f}")
