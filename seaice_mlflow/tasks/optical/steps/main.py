"""The optical chain as MLflow child runs: synth -> optical_train -> optical_evaluate -> register -> optical_predict.

The entry point ``optical_main`` (``seaice optical pipeline``): without photo folders, synthetic
photos in the PixelAnnotationTool layout are made once under ``--out`` (training and held-out
test photos of other seeds); the model is trained, scored on the test photos, registered under
its own name with the SAR charts' champion rule (``register --task optical``), and the champion
predicts masks of the test photos that an annotator can open in PixelAnnotationTool. Each step is
an MLproject entry point nested under the pipeline's run
(:class:`~seaice_mlflow.tracking.projects.Pipeline`); steps hand each other model URIs. The champion
is the model trained now only when it beat the older ones: the run's tags (``seaice.model_used.<step>``,
``seaice.trained_is_champion``) and the command's output say which model each step used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import mlflow

from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.tasks.optical.config import OpticalPipelineDefaults
from seaice_mlflow.tasks.optical.readers import open_folder
from seaice_mlflow.tasks.optical.synthetic import synthesize_photos
from seaice_mlflow.tracking.projects import ModelsUsed, Pipeline
from seaice_mlflow.tracking.runs import MODEL_URI_TAG, run_name, step_run


@dataclass(frozen=True)
class OpticalProfile:
    """Sizes of an optical pipeline run: synthetic photos (when no folders are given) and training."""

    train_photos: int
    test_photos: int
    size: tuple[int, int]
    train: dict[str, object] = field(default_factory=dict)  # OpticalTrainDefaults values beside the defaults


PROFILES: dict[str, OpticalProfile] = {
    # about a minute: checks that an installation works end to end (no meaningful model)
    "smoke": OpticalProfile(
        train_photos=4,
        test_photos=2,
        size=(96, 128),
        train={"epochs": 1, "batches_per_epoch": 2, "batch_size": 2, "patch_size": 64, "val_tile": 128, "workers": 0},
    ),
    # a few CPU minutes (benchmarks/bench_optical.py measures it against a per-pixel classifier)
    "demo": OpticalProfile(
        train_photos=24,
        test_photos=8,
        size=(256, 384),
        train={"epochs": 8, "batches_per_epoch": 40, "batch_size": 8, "patch_size": 128, "val_tile": 256},
    ),
}


@dataclass
class OpticalPipelineResult:
    runs: dict[str, str]  # step -> run id
    model_uri: str  # the trained model (models:/m-...)
    champion_uri: str  # models:/NAME@champion
    scores: dict[str, float]  # test scores of the evaluation
    masks: Path  # predicted mask files
    models: ModelsUsed  # the model each step used


@dataclass
class OpticalMainRun:
    run_id: str  # the pipeline's run, parent of the steps' runs
    result: OpticalPipelineResult
    tracking_uri: str


def photo_folders(profile: OpticalProfile, data_dir: str, test_dir: str, work: Path, seed: int) -> tuple[Path, Path]:
    """The training and test folders: given (checked before anything is made: a folder without
    labelled photos fails at once), or synthetic photos made once under ``work``."""
    splits = (("data_dir", data_dir, "train", profile.train_photos, 0),
              ("test_dir", test_dir, "test", profile.test_photos, 1000))  # fmt: skip
    for parameter, given, *_ in splits:
        if given and not any(p.label is not None for p in open_folder(given).photos):
            raise ParameterError(parameter, f"{given} holds no labelled photo; check it with `seaice optical inspect`")
    folders = []
    for _, given, split, count, offset in splits:
        if given:
            folders.append(Path(given).resolve())
            continue
        folder = work / "photos" / f"{split}-{count}x{profile.size[0]}x{profile.size[1]}-s{seed}"
        if len(list(folder.glob("photo_*.png"))) < count:  # made once; a partial folder is made again
            synthesize_photos(folder, n_images=count, size=profile.size, seed=seed + offset)
        folders.append(folder)
    return folders[0], folders[1]


def run_pipeline(options: OpticalPipelineDefaults, experiment_id: str, parent_run_id: str) -> OpticalPipelineResult:
    """The whole chain; returns what each step produced."""
    if options.profile not in PROFILES:
        raise ParameterError("profile", f"{options.profile!r} is not one of {', '.join(PROFILES)}")
    profile = PROFILES[options.profile]
    work = Path(options.out).resolve()
    train_dir, test_dir = photo_folders(profile, options.data_dir, options.test_dir, work, options.seed)
    pipeline = Pipeline(experiment_id, parent_run_id)
    trained = pipeline.step("optical_train", {"data_dir": train_dir, "out": work / "checkpoints", "seed": options.seed,
                                              **profile.train})  # fmt: skip
    model_uri = trained.data.tags[MODEL_URI_TAG]
    evaluated = pipeline.step("optical_evaluate", {"model_uri": model_uri, "data_dir": test_dir})
    experiment = mlflow.get_experiment(experiment_id).name
    registered = pipeline.step("register", {"experiment": experiment, "model_name": options.model_name,
                                            "task": "optical"})  # fmt: skip
    champion_uri = registered.data.tags["seaice.champion_uri"]
    pipeline.step("optical_predict", {"model_uri": champion_uri, "images": test_dir, "out": work / "masks"})
    scores = {k: v for k, v in evaluated.data.metrics.items() if k.startswith("test_")}
    models = pipeline.models_used("optical_train", "register", "optical_predict")
    return OpticalPipelineResult(pipeline.runs, model_uri, champion_uri, scores, work / "masks", models)


def main(options: OpticalPipelineDefaults = OpticalPipelineDefaults()) -> OpticalMainRun:
    """The whole chain in the active (or a new) run ("optical_main"), the steps as its child runs;
    logs the test scores and each step's run."""
    with step_run(
        "optical_main", asdict(options), name=run_name("optical_main", options.profile), family="optical"
    ) as run:
        result = run_pipeline(options, run.info.experiment_id, run.info.run_id)
        mlflow.log_metrics(result.scores)
        mlflow.set_tags({MODEL_URI_TAG: result.model_uri, "seaice.champion_uri": result.champion_uri,
                         "seaice.task": "optical", **result.models.tags(),
                         **{f"seaice.run.{step}": run_id for step, run_id in result.runs.items()}})  # fmt: skip
        return OpticalMainRun(run.info.run_id, result, mlflow.get_tracking_uri())
