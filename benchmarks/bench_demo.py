"""Does the demo's model clearly beat the per-pixel baseline? The pipeline's profile over data seeds.

For each seed this does what ``seaice pipeline --profile demo --seed S`` does, without MLflow:
the same synthetic training and test scenes, the same store and training settings
(``seaice_mlflow.tasks.autoice.steps.main.PROFILES``), the best checkpoint (the model training logs) scored on
the test scenes at 80 m, and the per-pixel baseline the pipeline logs as ``baseline_test_*``.
Prints both per seed, the margin, and the mean and smallest margin over the seeds. ``--set``
tries training settings beside the profile's (``--set class_weights=balanced --set epochs=20``),
``--downsample`` another store grid, ``--train-seed`` another training seed on the same data
(the spread between training seeds is the noise any trial's margin must clear). ``--test-scenes``
scores on more test scenes than the profile's (the first ones are the same scenes), and
``--reuse`` scores the checkpoint an earlier run left in the same folder (``--tag`` names
folders apart) instead of training again.

    python benchmarks/bench_demo.py [--profile demo] [--seeds 0,1,2] [--set NAME=VALUE ...] [--downsample N]
                                    [--train-seed N] [--test-scenes N] [--tag NAME] [--reuse] [--device auto]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import time

from common import CACHE, cached_baseline, print_epoch, print_scores, score_best
from seaice_mlflow.core.checkpoint import BEST
from seaice_mlflow.core.metrics import Scores
from seaice_mlflow.tasks.autoice.config import PREPROCESS, TRAIN
from seaice_mlflow.tasks.autoice.conversion import preprocess
from seaice_mlflow.tasks.autoice.files.variables import SCENE_VARIABLES
from seaice_mlflow.tasks.autoice.steps.main import PROFILES, Profile, scene_folders
from seaice_mlflow.tasks.autoice.train_config import TrainConfig
from seaice_mlflow.tasks.autoice.training import ChartTraining


def parse_setting(item: str) -> tuple[str, object]:
    """``NAME=VALUE`` as a TrainConfig option and a value of that option's type."""
    name, _, value = item.partition("=")
    if name not in TrainConfig.option_names():
        raise SystemExit(f"--set {item}: {name!r} is not a training option")
    default = getattr(TRAIN, name)
    if isinstance(default, bool):
        return name, value.lower() in ("1", "true", "yes")
    return name, type(default)(value)


def demo_training(
    profile: Profile,
    seed: int,
    device: str,
    settings: dict[str, object],
    train_seed: int | None = None,
    tag: str = "",
    reuse: bool = False,
) -> tuple[Scores, Scores, float | None, ChartTraining]:
    """CNN and baseline test scores of one pipeline run on data seed ``seed`` (training
    ``settings`` over the profile's, training seed ``train_seed``, default ``seed``), its
    training minutes (None when ``reuse`` found the folder's checkpoint) and the training itself
    (its history holds the per-epoch figures)."""
    work = CACHE / "demo"
    train_dir, test_dir = scene_folders(profile, "", "", work, seed)
    store = work / f"store-{train_dir.name}-x{profile.downsample}-val{profile.val_scenes}"
    if not (store / "manifest.json").is_file():
        preprocess(
            train_dir,
            store,
            downsample=profile.downsample,
            variables=SCENE_VARIABLES,
            val_scenes=profile.val_scenes,
            val_list=None,
            workers=PREPROCESS.workers,
            overwrite=False,
            seed=seed,
        )
    suffix = ("" if train_seed is None else f"-t{train_seed}") + (f"-{tag}" if tag else "")
    out = work / f"train-s{seed}-x{profile.downsample}{suffix}"
    trainer = ChartTraining.build(
        TrainConfig(
            **{
                **profile.train,
                **settings,
                "store": str(store),
                "out": str(out),
                "seed": seed if train_seed is None else train_seed,
                "device": device,
            }
        )
    )
    minutes = None
    if not (reuse and (out / BEST).is_file()):
        shutil.rmtree(out, ignore_errors=True)  # the Trainer writes nothing there before fit
        start = time.perf_counter()
        trainer.fit(print_epoch)
        minutes = (time.perf_counter() - start) / 60
    baseline = cached_baseline(train_dir, test_dir, profile.baseline_pixels, seed)
    return score_best(trainer, test_dir, device), baseline, minutes, trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo", choices=list(PROFILES))
    parser.add_argument("--seeds", default="0,1,2", help="comma list of pipeline seeds (data and training)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a training setting over the profile's (repeatable)",
    )
    parser.add_argument("--downsample", type=int, help="store downsampling (default: the profile's)")
    parser.add_argument("--train-seed", type=int, help="training seed (default: each data seed)")
    parser.add_argument("--test-scenes", type=int, help="test scenes, at least 1 (default: the profile's)")
    parser.add_argument("--tag", default="", help="a name appended to the training folder")
    parser.add_argument("--reuse", action="store_true", help="score the checkpoint already in the training folder")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    profile = PROFILES[args.profile]
    if args.downsample:
        profile = dataclasses.replace(profile, downsample=args.downsample)
    if args.test_scenes is not None:
        if args.test_scenes < 1:
            parser.error(f"--test-scenes must be at least 1, got {args.test_scenes}")
        profile = dataclasses.replace(profile, test_scenes=args.test_scenes)
    settings = dict(parse_setting(item) for item in args.set)
    print(
        f"profile {args.profile}: {profile.train_scenes} training scenes ({profile.val_scenes} for validation) "
        f"and {profile.test_scenes} test scenes of {profile.scene_size[0]} x {profile.scene_size[1]} px, "
        f"store x{profile.downsample}, training {profile.train}, set {settings}, "
        f"training seed {'= data seed' if args.train_seed is None else args.train_seed}"
    )
    margins = []
    for seed in (int(s) for s in args.seeds.split(",")):
        print(f"\nseed {seed}")
        cnn, baseline, minutes, _ = demo_training(
            profile, seed, args.device, settings, args.train_seed, args.tag, args.reuse
        )
        margins.append(cnn.combined - baseline.combined)
        print_scores("CNN (checkpoint reused)" if minutes is None else f"CNN (trained {minutes:.1f} min)", cnn)
        print_scores("per-pixel baseline", baseline)
        print(f"margin {margins[-1]:+.3f}")
    print(f"\nmargin over {len(margins)} seeds: mean {sum(margins) / len(margins):+.3f}, smallest {min(margins):+.3f}")


if __name__ == "__main__":
    main()
