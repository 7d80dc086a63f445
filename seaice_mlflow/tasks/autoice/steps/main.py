"""The whole chain as MLflow child runs: preprocess -> train -> evaluate -> register -> predict.

Each step is an MLproject entry point nested under the pipeline's run
(:class:`~seaice_mlflow.tracking.projects.Pipeline`); steps hand each other model URIs from their
runs, never artifact paths. Without data folders, synthetic scenes are made on the fly. The champion
that predicts is the model trained now only when it beat the older ones: the run's tags
(``seaice.model_used.<step>``, ``seaice.trained_is_champion``) and the command's output say which
model each step used.
:func:`main` is the step of the ``main`` entry point: it opens the pipeline's run and runs the
chain under it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import mlflow

from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.tasks.autoice.baseline import per_pixel_baseline
from seaice_mlflow.tasks.autoice.config import PipelineDefaults
from seaice_mlflow.tasks.autoice.files.naming import find_scene_files
from seaice_mlflow.tasks.autoice.synthetic import SYNTH_WORKERS, synthesize
from seaice_mlflow.tasks.autoice.upload import UPLOAD_PACKAGE
from seaice_mlflow.tracking.projects import ModelsUsed, Pipeline
from seaice_mlflow.tracking.runs import MODEL_URI_TAG, run_name, step_run


@dataclass(frozen=True)
class Profile:
    """Sizes of a pipeline run: synthetic data (when no folders are given), store, training."""

    train_scenes: int
    test_scenes: int
    scene_size: tuple[int, int]
    downsample: int
    val_scenes: int
    train: dict[str, object] = field(default_factory=dict)  # TrainConfig values beside the defaults
    baseline_pixels: int = 100_000


PROFILES: dict[str, Profile] = {
    # about a minute: checks that an installation works end to end (no meaningful model)
    "smoke": Profile(
        train_scenes=3,
        test_scenes=1,
        scene_size=(160, 200),
        downsample=2,
        val_scenes=1,
        train={
            "epochs": 1,
            "batches_per_epoch": 2,
            "batch_size": 4,
            "patch_size": 64,
            "unet_filters": "8,8,16,16",
            "val_tile": 128,
            "workers": 0,
        },
        baseline_pixels=5_000,
    ),
    # a few CPU minutes (benchmarks/bench_demo.py measures the margin over data seeds). A 1000 px
    # scene holds only 2-3 chart polygons (about 56 km apart, as in real charts) and SIC and SOD
    # are one value per polygon, so the CNN needs many scenes: trained on 6 it learnt SIC by heart.
    # The lighter U-Net of the starter pack trains 15 epochs in the time the default one takes for
    # 10 (the validation score levels off by then: 25 epochs gained +0.2). Without SOD's class
    # weights the CNN never predicted the rare young and thin first-year ice; weighting FLOE too
    # made it paint calm water as icebergs (a polygon label on water with a few bright points).
    # 8 test scenes: a margin measured on 4 (about 10 polygons) moved by several points with
    # the data seed (docs/experiments.md).
    "demo": Profile(
        train_scenes=40,
        test_scenes=8,
        scene_size=(1000, 1000),
        downsample=4,
        val_scenes=4,
        train={
            "unet_filters": "16,32,64,64",
            "epochs": 15,
            "batches_per_epoch": 50,
            "batch_size": 16,
            "patch_size": 64,
            "restart_epochs": 15,
            "early_stopping": 0,
            "val_tile": 256,
            "class_weights": "balanced:SOD",
        },
    ),
    # real-size settings: the training defaults on 80 m scenes of AI4Arctic size
    "full": Profile(
        train_scenes=24, test_scenes=4, scene_size=(5000, 5200), downsample=1, val_scenes=3, baseline_pixels=300_000
    ),
}


@dataclass
class PipelineResult:
    runs: dict[str, str]  # step -> run id
    model_uri: str  # the trained model (models:/m-...)
    champion_uri: str  # models:/NAME@champion
    scores: dict[str, float]  # test scores of the evaluation
    baseline: dict[str, float]  # per-pixel baseline on the same test scenes
    charts: Path  # predicted chart files
    models: ModelsUsed  # the model each step used


@dataclass
class MainRun:
    run_id: str  # the pipeline's run, parent of the steps' runs
    result: PipelineResult
    tracking_uri: str


def scene_folders(profile: Profile, data_dir: str, test_dir: str, work: Path, seed: int) -> tuple[Path, Path]:
    """The training and test folders: given, or synthetic scenes made once under ``work``.

    Given folders are checked before any scene is made, so a wrong path fails at once.
    """
    splits = (
        ("data_dir", data_dir, "train", profile.train_scenes, 0),
        ("test_dir", test_dir, "test", profile.test_scenes, 1000),
    )
    for parameter, given, *_ in splits:
        if given and (not Path(given).is_dir() or not find_scene_files(given)):
            raise ParameterError(parameter, f"{given} holds no AI4Arctic scene files")
    folders = []
    for _, given, split, count, offset in splits:
        if given:
            folders.append(Path(given).resolve())
            continue
        folder = work / "data" / f"{split}-{count}x{profile.scene_size[0]}x{profile.scene_size[1]}-s{seed}"
        if len(find_scene_files(folder) if folder.is_dir() else []) < count:
            synthesize(
                folder, n_scenes=count, size=profile.scene_size, split=split, seed=seed + offset, workers=SYNTH_WORKERS
            )
        folders.append(folder)
    return folders[0], folders[1]


def run_pipeline(
    profile_name: str,
    data_dir: str,
    test_dir: str,
    model_name: str,
    out: str,
    seed: int,
    experiment_id: str,
    parent_run_id: str,
) -> PipelineResult:
    """The whole chain; returns what each step produced."""
    if profile_name not in PROFILES:
        raise ParameterError("profile", f"{profile_name!r} is not one of {', '.join(PROFILES)}")
    profile = PROFILES[profile_name]
    work = Path(out).resolve()
    train_dir, test_folder = scene_folders(profile, data_dir, test_dir, work, seed)
    pipeline = Pipeline(experiment_id, parent_run_id)
    store = work / f"store-x{profile.downsample}"
    pipeline.step(
        "preprocess",
        {
            "data_dir": train_dir,
            "out": store,
            "downsample": profile.downsample,
            "val_scenes": profile.val_scenes,
            "seed": seed,
        },
    )
    trained = pipeline.step("train", {"store": store, "out": work / "checkpoints", "seed": seed, **profile.train})
    model_uri = trained.data.tags[MODEL_URI_TAG]
    evaluated = pipeline.step(
        "evaluate", {"model_uri": model_uri, "data_dir": test_folder, "upload_package": work / UPLOAD_PACKAGE}
    )
    experiment = mlflow.get_experiment(experiment_id).name
    registered = pipeline.step("register", {"experiment": experiment, "model_name": model_name})
    champion_uri = registered.data.tags["seaice.champion_uri"]
    pipeline.step("predict", {"model_uri": champion_uri, "scenes": test_folder, "out": work / "charts"})
    scores = {k: v for k, v in evaluated.data.metrics.items() if k.startswith("test_")}
    baseline = per_pixel_baseline(
        find_scene_files(train_dir), find_scene_files(test_folder), n_pixels=profile.baseline_pixels, seed=seed
    )
    models = pipeline.models_used("train", "register", "predict")
    return PipelineResult(
        pipeline.runs, model_uri, champion_uri, scores, baseline.metrics("baseline_test"), work / "charts", models
    )


def main(options: PipelineDefaults = PipelineDefaults()) -> MainRun:
    """The whole chain in the active (or a new) run ("main"), the steps as its child runs; logs the
    test scores, the per-pixel baseline and each step's run."""
    with step_run("main", asdict(options), name=run_name("main", options.profile)) as run:
        result = run_pipeline(
            options.profile,
            options.data_dir,
            options.test_dir,
            options.model_name,
            options.out,
            options.seed,
            run.info.experiment_id,
            run.info.run_id,
        )
        mlflow.log_metrics({**result.scores, **result.baseline})
        mlflow.set_tags(
            {
                MODEL_URI_TAG: result.model_uri,
                "seaice.champion_uri": result.champion_uri,
                **result.models.tags(),
                **{f"seaice.run.{step}": run_id for step, run_id in result.runs.items()},
            }
        )
        return MainRun(run.info.run_id, result, mlflow.get_tracking_uri())
