"""Full-scene inference: tiled (blended, memory-bounded) against one whole-scene forward pass.

On a synthetic 5000 x 5200 scene (AI4Arctic size at 80 m) and a 2500 x 2500 one, with the
default U-Net (32,32,64,64; all 24 inputs + 5 encodings; random weights, which cost the same as
trained ones), each case runs in a process of its own and reports its peak RSS and Mpixel/s of
prediction (the scene file is opened before the clock starts, as evaluate and predict open it;
the timed part reads and assembles the inputs, tile by tile or, for the whole-scene pass, the
full input stack). Prints the figures and the tiled/whole ratios measured in this run. Targets on
the 2-core CPU machine: tiled peak RSS <= 4 GiB and flat in scene size, tiled throughput >= 0.9x
the whole-scene pass; on a GPU, under one second of compute per 5000 px scene with AMP.

The ``forward`` case times the network alone on the tiled case's batches (the same tiles, read and
laid out channels_last outside the clock), so ``tiled / forward`` is the engine's own overhead:
reading and assembling the inputs, the layout change, softmax, blending and decoding. Each case
also reports its CPU seconds (process time): on a shared machine wall times move by tens of
percent from run to run, CPU times much less.

``--format raw`` runs the same cases on raw 40 m files (reduced to 80 m when opened, as evaluate
and predict read them).

    python benchmarks/bench_inference.py [--device auto] [--tile 768] [--overlap 64] [--batch 2]
                                         [--sizes large small] [--skip-whole-large] [--format ready]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import synthetic_split
from seaice_mlflow.core.defaults import TILING
from seaice_mlflow.tasks.autoice.files.naming import find_scene_files
from seaice_mlflow.tasks.autoice.synthetic import FORMATS

SIZES = {"large": (5000, 5200), "small": (2500, 2500)}
#: The tiled engine, one whole-scene pass, and the network alone on the tiled case's batches.
CASES = ("tiled", "whole", "forward")


def run_case(case: str, scene_path: Path, args: argparse.Namespace) -> dict:
    """Predict the scene in this process; returns seconds, Mpixel/s and peak RSS (GiB)."""
    import torch

    from seaice_mlflow.core.engine import TileOptions
    from seaice_mlflow.models import ModelSpec, UNetOptions, build_model
    from seaice_mlflow.tasks.autoice.charts import AUTOICE
    from seaice_mlflow.tasks.autoice.config import TRAIN
    from seaice_mlflow.tasks.autoice.ensemble import combine
    from seaice_mlflow.tasks.autoice.files.variables import parse_variables
    from seaice_mlflow.tasks.autoice.files.windowed import open_scene
    from seaice_mlflow.tasks.autoice.recipe import Recipe
    from seaice_mlflow.tasks.autoice.sources import SceneTiles

    variables = parse_variables(TRAIN.variables)
    filters = tuple(int(f) for f in TRAIN.unet_filters.split(","))
    recipe = Recipe(ModelSpec("unet", len(variables), AUTOICE.outputs(), UNetOptions(filters)), variables)
    torch.manual_seed(0)
    charter = combine(
        [(recipe, build_model(recipe.model))], args.device, TileOptions(args.tile, args.overlap, args.batch)
    )
    device = charter.predictor.device
    with open_scene(scene_path) as scene:  # as evaluate and predict read it: window by window
        if device.type == "cuda":  # warm-up: cuDNN autotuning and the CUDA context are not per scene
            charter.predict_scene(scene)
            torch.cuda.synchronize()
        if case == "forward":
            seconds, cpu_seconds = bare_forward(charter.predictor, SceneTiles(scene, variables))
        else:
            start, cpu_start = time.perf_counter(), time.process_time()
            if case == "tiled":
                charts = charter.predict_scene(scene).charts
            else:
                charts = charter.predictor.predict_whole(SceneTiles(scene, variables)).charts
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            assert charts["SIC"].shape == scene.shape
        pixels = scene.shape[0] * scene.shape[1]
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "mpix_per_s": pixels / 1e6 / seconds,
        "device": str(device),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "gpu_peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
    }


def bare_forward(predictor, source) -> tuple[float, float]:
    """Wall and CPU seconds of the network's forward passes alone over the batches of tiles that
    :meth:`ChartPredictor.predict` makes of ``source``; reading the tiles and laying them out as the
    engine does (channels_last) are outside the clock."""
    import numpy as np
    import torch

    from seaice_mlflow.core.engine import batch_groups
    from seaice_mlflow.core.tiling import Window

    (network,), device = predictor.models, predictor.device
    rows, heights, cols, widths = predictor.layout(source.shape)
    seconds = cpu_seconds = 0.0
    with torch.inference_mode():
        for r, th in zip(rows, heights):
            for group in batch_groups(widths, predictor.options.batch):
                batch = np.stack([source.read(Window(r, cols[j], th, widths[j])) for j in group])
                x = torch.from_numpy(batch).to(device).contiguous(memory_format=torch.channels_last)
                start, cpu_start = time.perf_counter(), time.process_time()
                with torch.autocast("cuda", dtype=torch.float16, enabled=device.type == "cuda"):
                    network(x)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds += time.perf_counter() - start
                cpu_seconds += time.process_time() - cpu_start
    return seconds, cpu_seconds


def in_subprocess(case: str, scene: Path, args: argparse.Namespace) -> dict | None:
    """:func:`run_case` in a fresh process (its own peak RSS); None when it failed (e.g. out of memory)."""
    command = [
        sys.executable,
        __file__,
        "--case",
        case,
        "--scene",
        str(scene),
        "--device",
        args.device,
        "--tile",
        str(args.tile),
        "--overlap",
        str(args.overlap),
        "--batch",
        str(args.batch),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        reason = "killed (out of memory?)" if done.returncode < 0 else done.stderr.strip().splitlines()[-1:]
        print(f"  {case} on {scene.name}: failed, exit {done.returncode}: {reason}", flush=True)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tile", type=int, default=TILING.tile)
    parser.add_argument("--overlap", type=int, default=TILING.overlap)
    parser.add_argument("--batch", type=int, default=TILING.batch)
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument(
        "--skip-whole-large",
        action="store_true",
        help="leave out the whole-scene pass on the 5000 px scene (it needs ~20 GiB on CPU)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="ready",
        help="scene files: ready-to-train (80 m) or raw (40 m, reduced to 80 m when opened)",
    )
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--scene", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # a child process: one measurement, printed as JSON
        print(json.dumps(run_case(args.case, args.scene, args)))
        return

    folders = {
        name: synthetic_split(f"inference-{name}", 1, size, "test", seed=5, fmt=args.format)
        for name, size in SIZES.items()
        if name in args.sizes
    }
    scenes = {name: find_scene_files(folder)[0] for name, folder in folders.items()}
    print(
        f"default U-Net, {args.format} files, tile {args.tile}, overlap {args.overlap}, batch {args.batch}, "
        f"device {args.device}"
    )
    results = {}
    for name, scene in scenes.items():
        for case in CASES:
            if case == "whole" and name == "large" and args.skip_whole_large:
                continue
            results[name, case] = found = in_subprocess(case, scene, args)
            if found:
                gpu = f", GPU peak {found['gpu_peak_gib']:.2f} GiB" if found["gpu_peak_gib"] is not None else ""
                print(
                    f"  {case:<7} {'x'.join(map(str, SIZES[name])):>9} px: {found['seconds']:7.2f} s "
                    f"(CPU {found['cpu_seconds']:7.2f} s)  {found['mpix_per_s']:6.2f} Mpixel/s  "
                    f"peak RSS {found['peak_rss_gib']:5.2f} GiB  ({found['device']}{gpu})",
                    flush=True,
                )
    print()
    for name in scenes:
        tiled, whole, forward = (results.get((name, case)) for case in CASES)
        if tiled and forward:
            print(
                f"{name} scene: engine overhead, tiled / bare forward on the same tiles: "
                f"{tiled['seconds'] / forward['seconds']:.2f}x wall, "
                f"{tiled['cpu_seconds'] / forward['cpu_seconds']:.2f}x CPU"
            )
        if tiled and whole:
            print(
                f"{name} scene: tiled/whole throughput {tiled['mpix_per_s'] / whole['mpix_per_s']:.2f}x "
                f"(target >= 0.9), peak RSS {tiled['peak_rss_gib']:.2f} vs {whole['peak_rss_gib']:.2f} GiB"
            )
    large, small = results.get(("large", "tiled")), results.get(("small", "tiled"))
    if large and small:
        print(
            f"tiled peak RSS {large['peak_rss_gib']:.2f} GiB on 5000x5200 vs {small['peak_rss_gib']:.2f} GiB on "
            f"2500x2500 (target <= 4 GiB and flat; what grows is the strip of tile rows across the scene's "
            "width and the uint8 charts)"
        )


if __name__ == "__main__":
    main()
