"""Pixel against patch formulation: the demo U-Net and a patch classifier, same scenes, same wall time.

On the demo's synthetic scenes (``seaice pipeline --profile demo --seed S`` data and store), the
demo U-Net trains with the profile's settings; then a patch classifier (``--model``, default the
small ``patchcnn``; homogeneous ``--patch-size`` windows of the store, step ``--patch-stride``)
trains for the same wall time (``--max-minutes`` of the U-Net's, epochs unbounded). Both are
scored on the same test scenes with the official rules (the classifier's chart slides it over
each scene). Prints both scores, the per-pixel baseline, the training patches per second of
each and their ratio, measured in this run.

    python benchmarks/bench_patch_vs_pixel.py [--seed 0] [--model patchcnn] [--patch-size 32]
                                              [--patch-stride 8] [--patch-purity 1.0] [--device auto]
"""

from __future__ import annotations

import argparse

import numpy as np

from bench_demo import demo_training
from common import print_scores
from seaice_mlflow.tasks.autoice.steps.main import PROFILES


def patches_per_second(training) -> float:
    return float(np.mean([h["patches_per_s"] for h in training.state.history]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="patchcnn")
    parser.add_argument("--patch-size", type=int, default=32)
    parser.add_argument("--patch-stride", type=int, default=8)
    parser.add_argument("--patch-purity", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    profile = PROFILES["demo"]
    pixel, baseline, minutes, unet = demo_training(profile, args.seed, args.device, {}, tag="pixel")
    settings = {"model": args.model, "patch_size": args.patch_size, "patch_stride": args.patch_stride,
                "patch_purity": args.patch_purity, "batch_size": args.batch_size, "epochs": 1000,
                "early_stopping": 0, "max_minutes": minutes, "restart_epochs": 1000}  # fmt: skip
    patch, _, patch_minutes, classifier = demo_training(profile, args.seed, args.device, settings, tag=args.model)
    print(f"\ndemo data seed {args.seed}: {profile.train_scenes} training scenes, {profile.test_scenes} test scenes, "
          f"store x{profile.downsample}")  # fmt: skip
    print_scores(f"U-Net ({minutes:.1f} min, {unet.state.epoch} epochs)", pixel)
    print_scores(f"{args.model} ({patch_minutes:.1f} min, {classifier.state.epoch} epochs)", patch)
    print_scores("per-pixel baseline", baseline)
    pixel_rate, patch_rate = patches_per_second(unet), patches_per_second(classifier)
    print(f"training patches per second: U-Net {pixel_rate:.1f} ({profile.train['patch_size']} px), "
          f"{args.model} {patch_rate:.1f} ({args.patch_size} px); ratio {patch_rate / pixel_rate:.2f}")  # fmt: skip
    print(f"SOD F1: U-Net {pixel.charts['SOD']:.2f}, {args.model} {patch.charts['SOD']:.2f}; "
          f"homogeneous training patches: {len(classifier.patch_manifest())}")  # fmt: skip


if __name__ == "__main__":
    main()
