"""Close-range optical ice segmentation: the default model against a per-pixel baseline, tiling and throughput.

The defaults are the optical pipeline's demo profile (``seaice optical pipeline --profile demo``).
Synthetic photos (``seaice optical synth``): ``--train-photos`` for training (seed ``--seed``; the
model trains on their 80 % split and picks its checkpoint on the other 20 %) and ``--test-photos``
held out (seed + 1000), both ``--size``, plus one held-out ``--big`` photo (seed + 2000). Then:

1. the model (``--model``/``--encoder``, random init) trains in this process through
   ``seaice optical train``'s step (an MLflow run in a sqlite store of the work folder); its wall
   time is that whole call (building, epochs with validation, logging the model);
2. the per-pixel colour/texture baseline (:mod:`seaice_mlflow.tasks.optical.baseline`) fits on the
   same training split at that wall time: its pixel sample grows until a fit would overrun it, the
   last fit within it is kept (pixels and seconds printed; the search's own total too);
3. both are scored on the held-out photos as ``seaice optical evaluate`` scores (the logged model
   loaded back, tiled at the inference defaults: tile 1024, overlap 384);
4. in a fresh process, the logged model (loaded as in 3, or at ``--tile``/``--overlap``) on the
   big held-out photo: tiled inference, photos per second (after a warm-up on one batch of tiles; ``--repeats`` timed
   predictions) and the process's peak RSS then (VmHWM: interpreter, torch, model, the photo and
   its tiled inference; getrusage would add this process's pages at fork time), beside the peak
   before the first full prediction; then one whole-photo pass of the same network and the share
   of pixels where the two agree (the project wants >= 99.9 %), with the process's peak after it.

Timings are of this run on this machine (a shared CPU gives rough ones). ``--threads`` (default
1: on the shared 2-core VM one thread ran torch training steps and gradient boosting about twice as
fast as two) sets torch's threads and the booster's alike; 0 leaves the libraries' defaults.

    python benchmarks/bench_optical.py [--train-photos 24] [--test-photos 8] [--size 256 384] [--epochs 8]
        [--batches-per-epoch 40] [--batch-size 8] [--patch-size 128] [--lr 0.001] [--model smp_unet]
        [--encoder resnet18] [--device auto] [--seed 0] [--big 1536 2048] [--threads 1] [--repeats 1]
        [--tile 1024] [--overlap 384] [--baseline-growth 4] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from seaice_mlflow.tasks.optical.config import OPTICAL_INFERENCE
from seaice_mlflow.tasks.optical.steps.main import PROFILES

EXPERIMENT = "bench-optical"


def memory_status(field: str) -> float:
    """``VmHWM`` or ``VmRSS`` of this process from /proc/self/status, in GiB."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) / 2**20  # "VmHWM:  123 kB"


def set_threads(threads: int) -> None:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)


def inference_case(args: argparse.Namespace) -> dict:
    """In this process (the child): tiled inference of the photo ``args.photo`` (seconds, photos/s,
    peak RSS), then one whole-photo pass of the same network and the share of pixels where they agree."""
    import torch

    from seaice_mlflow.core.engine import tile_layout
    from seaice_mlflow.tasks.optical.crops import HEAD, PhotoTiles
    from seaice_mlflow.tasks.optical.logged_models import load_optical_models
    from seaice_mlflow.tasks.optical.readers import read_image

    set_threads(args.threads)
    start = time.perf_counter()
    model, _ = load_optical_models(args.model_uri, args.device, args.tile, args.overlap)
    rgb = read_image(args.photo)
    loaded = time.perf_counter() - start
    predictor = model.predictor
    device, opts = predictor.device, predictor.options
    model.predict_photo(rgb[: opts.tile, : 2 * opts.tile])  # warm-up: one batch of tiles of the photo's tile shape
    ready_gib = memory_status("VmHWM")
    seconds = []
    for _ in range(args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        clock = time.perf_counter()
        tiled, _ = model.predict_photo(rgb)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - clock)
    tiled_gib = memory_status("VmHWM")
    gpu_tiled = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    clock = time.perf_counter()
    whole = model.ids[predictor.predict_whole(PhotoTiles(rgb, model.recipe.mean, model.recipe.std)).charts[HEAD]]
    whole_seconds = time.perf_counter() - clock
    if tiled.shape != rgb.shape[:2] or whole.shape != tiled.shape:
        raise RuntimeError(f"the masks are {tiled.shape} and {whole.shape}, the photo {rgb.shape[:2]}")
    rows, cols = (tile_layout(n, opts.tile, opts.overlap, predictor.stride)[0] for n in rgb.shape[:2])
    return {
        "seconds": seconds,
        "photos_per_s": len(seconds) / sum(seconds),
        "load_seconds": loaded,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "tile": opts.tile,
        "overlap": opts.overlap,
        "tiles": len(rows) * len(cols),
        "ready_peak_rss_gib": ready_gib,
        "peak_rss_gib": tiled_gib,
        "gpu_peak_gib": gpu_tiled,
        "agreement": 100 * float(np.mean(tiled == whole)),
        "whole_seconds": whole_seconds,
        "whole_peak_rss_gib": memory_status("VmHWM"),
    }


def in_subprocess(model_uri: str, photo: Path, args: argparse.Namespace) -> dict:
    """:func:`inference_case` in a fresh process (its own peak RSS), the tracking store passed in the environment."""
    command = [sys.executable, __file__, "--child-model-uri", model_uri, "--child-photo", str(photo),
               "--device", args.device, "--threads", str(args.threads), "--repeats", str(args.repeats),
               "--tile", str(args.tile), "--overlap", str(args.overlap)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode != 0:
        reason = "killed (out of memory?)" if done.returncode < 0 else "\n".join(done.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"the inference process failed, exit {done.returncode}: {reason}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def use_store(work: Path) -> str:
    """MLflow at a sqlite store in ``work`` (absolute), its artifacts there too, in the experiment ``EXPERIMENT``."""
    import mlflow

    uri = f"sqlite:///{(work / 'mlflow.db').resolve()}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["MLFLOW_EXPERIMENT_NAME"] = EXPERIMENT
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    if client.get_experiment_by_name(EXPERIMENT) is None:
        client.create_experiment(EXPERIMENT, artifact_location=(work / "artifacts").resolve().as_uri())
    return uri


def per_class_line(label: str, scores) -> str:
    return f"  {label:<9}" + " ".join(f"{v['iou']:6.1f}" for v in scores.per_class.values())


def run(args: argparse.Namespace, work: Path) -> None:
    from seaice_mlflow.tasks.optical.baseline import fit_within_budget
    from seaice_mlflow.tasks.optical.config import OpticalTrainDefaults
    from seaice_mlflow.tasks.optical.logged_models import load_optical_models
    from seaice_mlflow.tasks.optical.masks import score_photos
    from seaice_mlflow.tasks.optical.readers import open_folder, read_pair
    from seaice_mlflow.tasks.optical.steps.train import train
    from seaice_mlflow.tasks.optical.synthetic import synthesize_photos

    set_threads(args.threads)
    use_store(work)
    size, big_size = tuple(args.size), tuple(args.big)
    clock = time.perf_counter()
    synthesize_photos(work / "train", args.train_photos, size, seed=args.seed)
    synthesize_photos(work / "test", args.test_photos, size, seed=args.seed + 1000)
    big = synthesize_photos(work / "big", 1, big_size, seed=args.seed + 2000)[0]
    print(f"synthetic photos: {args.train_photos} training and {args.test_photos} held-out of {size[0]}x{size[1]}, "
          f"one held-out of {big_size[0]}x{big_size[1]} ({time.perf_counter() - clock:.0f} s)", flush=True)  # fmt: skip

    options = OpticalTrainDefaults(model=args.model, encoder=args.encoder, epochs=args.epochs,
                                   batches_per_epoch=args.batches_per_epoch, batch_size=args.batch_size,
                                   patch_size=args.patch_size, lr=args.lr, workers=args.workers, device=args.device,
                                   seed=args.seed, out=str(work / "checkpoints"))  # fmt: skip
    print(f"training {args.model} {args.encoder}: {args.epochs} epochs x {args.batches_per_epoch} batches of "
          f"{args.batch_size} crops of {args.patch_size} px, lr {args.lr}, threads {args.threads or 'default'}",
          flush=True)  # fmt: skip
    clock = time.perf_counter()

    def epoch_line(report) -> None:
        m = report.metrics
        val = m.get("val_ice_miou", float("nan"))
        print(f"  epoch {report.epoch + 1:3d}  loss {m['train_loss']:.3f}  val mIoU {val:6.2f}  "
              f"{m['patches_per_s']:.2f} crops/s  {time.perf_counter() - clock:5.0f} s", flush=True)  # fmt: skip

    trained = train(work / "train", options, epoch_line)
    train_seconds = time.perf_counter() - clock

    folder = open_folder(work / "train", seed=args.seed)  # the split the training used
    print(f"fitting the per-pixel baseline within {train_seconds:.0f} s on the {len(folder.split('train'))} "
          "training photos", flush=True)  # fmt: skip
    fit = fit_within_budget(folder.split("train"), folder.table, train_seconds, seed=args.seed,
                            growth=args.baseline_growth, threads=args.threads or None)  # fmt: skip
    print("  fits (pixels: s): " + ", ".join(f"{n}: {s:.0f}" for n, s in fit.tried), flush=True)

    test = open_folder(work / "test")
    photos = [p for p in test.photos if p.label is not None]
    model, _ = load_optical_models(trained.model_uri, args.device)  # tile and overlap: the inference defaults
    lookup = test.table.index_lookup()
    model_pairs, baseline_pairs, seconds = [], [], {"model": 0.0, "baseline": 0.0}
    for photo in photos:
        rgb, reference = read_pair(photo, test.table)
        clock = time.perf_counter()
        model_pairs.append((reference, lookup[model.predict_photo(rgb)[0]]))
        seconds["model"] += time.perf_counter() - clock
        clock = time.perf_counter()
        baseline_pairs.append((reference, fit.classifier.predict_photo(rgb)))
        seconds["baseline"] += time.perf_counter() - clock
    model_scores, baseline_scores = score_photos(model_pairs, test.table), score_photos(baseline_pairs, test.table)

    speed = in_subprocess(trained.model_uri, big, args)

    print(f"\noptical benchmark: {args.model} {args.encoder} against the per-pixel baseline, {len(photos)} held-out "
          f"photos of {size[0]}x{size[1]}, device {speed['device']}, threads {speed['threads']}")  # fmt: skip
    rows = [
        ("model mIoU (%)", f"{model_scores.miou:.2f}", f"without sky {model_scores.miou_without_background:.2f}, "
         f"pixel accuracy {model_scores.pixel_accuracy:.2f}; {trained.epochs} epochs, best val "
         f"{trained.best_val_combined if trained.best_val_combined is not None else float('nan'):.2f}"),
        ("baseline mIoU (%)", f"{baseline_scores.miou:.2f}", "without sky "
         f"{baseline_scores.miou_without_background:.2f}, pixel accuracy {baseline_scores.pixel_accuracy:.2f}"),
        ("baseline pixels", f"{fit.pixels:,}", f"fit {fit.seconds:.1f} s, {fit.classifier.model.n_iter_} boosting "
         f"iterations; search {fit.total_seconds:.0f} s in all ({len(fit.tried)} fits)"),
        ("train seconds", f"{train_seconds:.1f}", "the model's train() call: build, epochs, validation, logging"),
        ("held-out inference s", f"{seconds['model']:.1f}", f"model; baseline {seconds['baseline']:.1f} "
         f"({len(photos)} photos)"),
        ("tiled/whole agreement (%)", f"{speed['agreement']:.3f}", f"{big_size[0]}x{big_size[1]} held-out photo, "
         f"{speed['tiles']} tiles of {speed['tile']}, overlap {speed['overlap']}; one whole-photo pass "
         f"{speed['whole_seconds']:.1f} s, its process peak RSS {speed['whole_peak_rss_gib']:.2f} GiB"),
        ("photos/s (tiled)", f"{speed['photos_per_s']:.4f}", f"{big_size[0]}x{big_size[1]}: "
         + ", ".join(f"{s:.1f}" for s in speed["seconds"]) + " s per photo, after a warm-up"),
        ("peak RSS (GiB)", f"{speed['peak_rss_gib']:.2f}", f"VmHWM of the inference process after tiled inference; "
         f"{speed['ready_peak_rss_gib']:.2f} before the first full prediction (model loaded, photo read, warmed up)"
         + (f"; GPU peak {speed['gpu_peak_gib']:.2f}" if speed["gpu_peak_gib"] is not None else "")),
    ]  # fmt: skip
    for name, value, note in rows:
        print(f"{name:<26} {value:>10}   {note}")
    print("per-class IoU (%): " + ", ".join(test.table.names))
    print(per_class_line("model", model_scores))
    print(per_class_line("baseline", baseline_scores))


def main() -> None:
    demo = PROFILES["demo"]  # the defaults: the optical pipeline's demo profile
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-photos", type=int, default=demo.train_photos)
    parser.add_argument("--test-photos", type=int, default=demo.test_photos)
    parser.add_argument("--size", type=int, nargs=2, default=list(demo.size), metavar=("H", "W"))
    parser.add_argument("--epochs", type=int, default=demo.train["epochs"])
    parser.add_argument("--batches-per-epoch", type=int, default=demo.train["batches_per_epoch"])
    parser.add_argument("--batch-size", type=int, default=demo.train["batch_size"])
    parser.add_argument("--patch-size", type=int, default=demo.train["patch_size"])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--model", default="smp_unet")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--workers", type=int, default=0, help="crop loader processes (0: in the training process)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--big", type=int, nargs=2, default=[1536, 2048], metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=1, help="torch and booster threads (0: the libraries' own)")
    parser.add_argument("--repeats", type=int, default=1, help="timed predictions of the big photo")
    parser.add_argument(
        "--tile",
        type=int,
        default=OPTICAL_INFERENCE.tile,
        help="tile of the big photo's inference (default: the inference default)",
    )
    parser.add_argument("--overlap", type=int, default=OPTICAL_INFERENCE.overlap,
                        help="tile overlap of the big photo's inference (default: the inference default)")  # fmt: skip
    parser.add_argument("--baseline-growth", type=float, default=4.0,
                        help="growth of the baseline's pixel sample per fit (the fits sum to growth/(growth-1) "
                        "budgets at most)")  # fmt: skip
    parser.add_argument("--work", type=Path, help="folder to keep the photos, store and checkpoints in (default: a "
                        "temporary one)")  # fmt: skip
    parser.add_argument("--child-model-uri", help=argparse.SUPPRESS)
    parser.add_argument("--child-photo", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_model_uri:  # the inference process: its measurements, printed as JSON
        args.model_uri, args.photo = args.child_model_uri, args.child_photo
        print(json.dumps(inference_case(args)))
        return
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
        run(args, args.work.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="bench-optical-") as tmp:
            run(args, Path(tmp))


if __name__ == "__main__":
    main()
