"""Does the CNN beat the per-pixel baseline? Official scores on held-out synthetic test scenes.

Trains the default U-Net (training defaults, store downsampled x4 as the CPU budget allows:
MMSeaIce trained at x10) for a fixed number of batches (about 10 CPU minutes on the 2-core
machine) on the quality benchmark's 8 training scenes (two held out for validation), then scores
the best checkpoint on the 4 test scenes at 80 m with the official rules, next to the per-pixel
gradient-boosting baseline of bench_synthetic.py on the same data.

    python benchmarks/bench_quality.py [--epochs 12] [--batches-per-epoch 60] [--downsample 4]
"""

from __future__ import annotations

import argparse
import shutil
import time

from common import CACHE, cached_baseline, print_epoch, print_scores, quality_data, score_best
from seaice_mlflow.tasks.autoice.conversion import preprocess
from seaice_mlflow.tasks.autoice.files.variables import SCENE_VARIABLES
from seaice_mlflow.tasks.autoice.train_config import TrainConfig
from seaice_mlflow.tasks.autoice.training import ChartTraining


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batches-per-epoch", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch-size", type=int, default=64)
    parser.add_argument("--downsample", type=int, default=4)
    parser.add_argument("--val-scenes", type=int, default=2)
    parser.add_argument("--model", default="unet")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    train_dir, test_dir = quality_data()
    store = CACHE / f"quality-store-x{args.downsample}-val{args.val_scenes}"
    if not (store / "manifest.json").is_file():
        preprocess(
            train_dir,
            store,
            downsample=args.downsample,
            variables=SCENE_VARIABLES,
            val_scenes=args.val_scenes,
            val_list=None,
            workers=2,
            overwrite=False,
            seed=0,
        )
    out = CACHE / f"quality-train-x{args.downsample}-{args.model}"
    shutil.rmtree(out, ignore_errors=True)
    config = TrainConfig(
        store=str(store),
        out=str(out),
        model=args.model,
        epochs=args.epochs,
        batches_per_epoch=args.batches_per_epoch,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        restart_epochs=args.epochs,
        early_stopping=0,
        val_tile=256,
        device=args.device,
    )
    trainer = ChartTraining.build(config)
    start = time.perf_counter()
    trainer.fit(print_epoch)
    train_s = time.perf_counter() - start
    print(
        f"trained {args.model} for {args.epochs} x {args.batches_per_epoch} batches of {args.batch_size} "
        f"patches ({args.patch_size} px at x{args.downsample}) in {train_s / 60:.1f} min, best epoch "
        f"{trainer.state.best_epoch + 1}"
    )

    scores = score_best(trainer, test_dir, args.device)
    print()
    print_scores(f"CNN ({args.model}, test scenes)", scores)
    print_scores("per-pixel baseline (test scenes)", cached_baseline(train_dir, test_dir))


if __name__ == "__main__":
    main()
