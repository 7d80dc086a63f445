"""Attribution cost: seconds per patch of each `seaice explain` method on this machine.

A U-Net of the demo's size (16,32,64,64; all 24 inputs + 5 encodings; random weights, which cost
the same as trained ones) on synthetic 128 px patches with random reference charts; every chart
as a whole (no per-class targets), the default input groups (29 variables and 16 groups), IG's 16
steps and GradientSHAP's 16 samples, 3 permutation shuffles. Prints seconds per patch per method
and the share of each method in the total, measured in this run.

    python benchmarks/bench_explain.py [--patches 8] [--patch-size 128] [--device cpu] [--charts SIC,SOD,FLOE]
"""

from __future__ import annotations

import argparse
import time

import torch

from seaice_mlflow.core.attribution import METHODS, Patches, Settings, attribution_table
from seaice_mlflow.core.engine import resolve_device
from seaice_mlflow.models import build_model, spec_from_options
from seaice_mlflow.tasks.autoice.charts import AUTOICE
from seaice_mlflow.tasks.autoice.explain import features_of
from seaice_mlflow.tasks.autoice.files.variables import INPUT_VARIABLES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=8)
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--charts", default="SIC,SOD,FLOE")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    spec = spec_from_options("unet", len(INPUT_VARIABLES), AUTOICE.outputs(), {"unet_filters": (16, 32, 64, 64)})
    network = build_model(spec).to(device).eval()
    size = (args.patches, args.patch_size, args.patch_size)
    inputs = torch.randn(args.patches, len(INPUT_VARIABLES), args.patch_size, args.patch_size, device=device)
    references = {h.name: torch.randint(0, h.n_classes, size, device=device) for h in AUTOICE.heads}
    patches = Patches(inputs, references)
    charts = args.charts.split(",")
    features = features_of("default", INPUT_VARIABLES)
    settings = Settings(steps=16, repeats=3)
    seconds = {}
    for method in METHODS:
        started = time.perf_counter()
        attribution_table(network, AUTOICE, patches, charts, {}, features, [method], settings)
        seconds[method] = (time.perf_counter() - started) / args.patches
    total = sum(seconds.values())
    print(f"{args.patches} patches of {args.patch_size} px, charts {args.charts}, {len(features)} features, "
          f"U-Net 16,32,64,64, device {device}")  # fmt: skip
    print(f"{'method':<14}{'s / patch':>10}{'share':>8}")
    for method, value in seconds.items():
        print(f"{method:<14}{value:>10.3f}{value / total:>8.0%}")
    print(f"{'all':<14}{total:>10.3f}")


if __name__ == "__main__":
    main()
