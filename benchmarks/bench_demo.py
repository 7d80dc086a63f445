"""Does the demo's model clearly beat the per-pixel baseline? The pipeline's profile over data seeds.

For each seed this does what ``seaice pipeline --profile demo --seed S`` does, without MLflow:
the same synthetic training and test scenes, the same store and training settings
(``seaice_mlflow.pipeline.PROFILES``), the best checkpoint (the model training logs) scored on
the test scenes at 80 m, and the per-pixel baseline the pipeline logs as ``baseline_test_*``.
Prints both per seed, the margin, and the mean and smallest margin over the seeds.

    python benchmarks/bench_demo.py [--profile demo] [--seeds 0,1,2] [--device auto]
"""

from __future__ import annotations

import argparse
import shutil
import time

from common import CACHE, print_epoch, print_scores, score_best
from seaice_mlflow.data.naming import find_scene_files
from seaice_mlflow.data.preprocess import preprocess
from seaice_mlflow.data.variables import SCENE_VARIABLES
from seaice_mlflow.pipeline import PROFILES, Profile, scene_folders
from seaice_mlflow.scoring.baseline import per_pixel_baseline
from seaice_mlflow.scoring.metrics import Scores
from seaice_mlflow.training.options import TrainConfig
from seaice_mlflow.training.trainer import Trainer


def demo_run(profile: Profile, seed: int, device: str) -> tuple[Scores, Scores, float]:
    """CNN and baseline test scores of one pipeline run, and its training minutes."""
    work = CACHE / "demo"
    train_dir, test_dir = scene_folders(profile, "", "", work, seed)
    store = work / f"store-{train_dir.name}-x{profile.downsample}-val{profile.val_scenes}"
    if not (store / "manifest.json").is_file():
        preprocess(train_dir, store, downsample=profile.downsample, variables=SCENE_VARIABLES,
                   val_scenes=profile.val_scenes, val_list=None, workers=2, overwrite=False, seed=seed)
    out = work / f"train-s{seed}"
    shutil.rmtree(out, ignore_errors=True)
    trainer = Trainer(TrainConfig(store=str(store), out=str(out), seed=seed, device=device, **profile.train))
    start = time.perf_counter()
    trainer.fit(print_epoch)
    minutes = (time.perf_counter() - start) / 60
    baseline = per_pixel_baseline(find_scene_files(train_dir), find_scene_files(test_dir),
                                  n_pixels=profile.baseline_pixels, seed=seed)
    return score_best(trainer, test_dir, device), baseline, minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo", choices=list(PROFILES))
    parser.add_argument("--seeds", default="0,1,2", help="comma list of pipeline seeds (data and training)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    profile = PROFILES[args.profile]
    print(f"profile {args.profile}: {profile.train_scenes} training scenes ({profile.val_scenes} for validation) "
          f"and {profile.test_scenes} test scenes of {profile.scene_size[0]} x {profile.scene_size[1]} px, "
          f"store x{profile.downsample}, training {profile.train}")
    margins = []
    for seed in (int(s) for s in args.seeds.split(",")):
        print(f"\nseed {seed}")
        cnn, baseline, minutes = demo_run(profile, seed, args.device)
        margins.append(cnn.combined - baseline.combined)
        print_scores(f"CNN (trained {minutes:.1f} min)", cnn)
        print_scores("per-pixel baseline", baseline)
        print(f"margin {margins[-1]:+.3f}")
    print(f"\nmargin over {len(margins)} seeds: mean {sum(margins) / len(margins):+.3f}, smallest {min(margins):+.3f}")


if __name__ == "__main__":
    main()
