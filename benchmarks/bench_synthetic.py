"""Does the synthetic data need spatial context? A per-pixel classifier as the baseline to beat.

Trains scikit-learn gradient boosting on each pixel's own 24 input channels (no neighbours) on
the quality benchmark's training scenes and prints its official score on the held-out test
scenes; the CNN of bench_quality.py must beat it by a wide margin. Also prints the synthetic
class histograms next to the real ones (spec section 4).

    python benchmarks/bench_synthetic.py [--pixels 300000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import print_scores, quality_data
from seaice_mlflow.tasks.autoice.baseline import per_pixel_baseline
from seaice_mlflow.tasks.autoice.charts import (
    CHART_NAMES,
    CHARTS,
    IGNORE_INDEX,
    REAL_CLASS_FREQUENCIES,
    REAL_MASKED_PERCENT,
)
from seaice_mlflow.tasks.autoice.files.naming import find_scene_files
from seaice_mlflow.tasks.autoice.files.reader import read_scene


def histogram_table(scenes) -> None:
    print("\nclass frequencies of valid pixels, synthetic (train+test) vs real AI4Arctic (spec section 4):")
    for chart in CHART_NAMES:
        counts = sum(np.bincount(s.charts[chart].ravel(), minlength=256) for s in scenes)
        valid = counts[: CHARTS[chart].n_classes]
        synth = 100 * valid / valid.sum()
        masked = 100 * counts[IGNORE_INDEX] / counts.sum()
        print(f"  {chart:<5}{'class':>8}" + "".join(f"{k:>7}" for k in range(len(valid))) + f"{'masked':>9}")
        print(f"  {'':<5}{'synth %':>8}" + "".join(f"{v:7.2f}" for v in synth) + f"{masked:9.1f}")
        print(
            f"  {'':<5}{'real %':>8}"
            + "".join(f"{v:7.2f}" for v in REAL_CLASS_FREQUENCIES[chart])
            + f"{REAL_MASKED_PERCENT[chart]:9.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pixels", type=int, default=300_000, help="training pixels (sampled over scenes)")
    args = parser.parse_args()
    t0 = time.time()
    train_dir, test_dir = quality_data()
    train = [read_scene(p) for p in find_scene_files(train_dir)]
    test = [read_scene(p) for p in find_scene_files(test_dir)]
    print(
        f"data: {len(train)} train + {len(test)} test scenes of {train[0].shape[0]}x{train[0].shape[1]} px "
        f"({time.time() - t0:.0f} s incl. generation on first run)"
    )
    t0 = time.time()
    scores = per_pixel_baseline(find_scene_files(train_dir), find_scene_files(test_dir), args.pixels)
    print(f"per-pixel gradient boosting on {args.pixels} training pixels: {time.time() - t0:.0f} s\n")
    print_scores("per-pixel baseline (test scenes)", scores)
    histogram_table(train + test)


if __name__ == "__main__":
    main()
