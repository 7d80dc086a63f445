"""Defaults of every command: the single source for click options, MLproject and logged params.

Defaults are the good settings for real data, not toy ones; the ``main`` pipeline's demo
profile scales them down explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TilingDefaults:
    """Full-scene inference tiles (working-grid pixels; :class:`~seaice_mlflow.inference.engine.TileOptions`).

    768 px tiles with 64 px overlap in batches of 2 were the fastest on the 2-core CPU
    (benchmarks/bench_inference.py: 512 x 4 computes 31 % more pixels in overlaps, 1024 x 1 was
    slower per pixel); a batch is about 1.2 Mpixel, also a good size for a GPU.
    """

    tile: int = 768
    overlap: int = 64
    batch: int = 2


TILING = TilingDefaults()


@dataclass(frozen=True)
class TrackingDefaults:
    """How commands deal with an HTTP tracking server (MLflow's own retries wait ~4 min per call)."""

    check_timeout_s: int = 5  # the check that the server answers, before any work
    training_retries: int = 3  # any call during training (~7 s of backoff; MLflow's 7 take ~4 min)
    epoch_retries: int = 1  # per-epoch logging in training: fail fast, keep the metrics, train on
    epoch_timeout_s: int = 10
    #: how long a training that has finished waits for a server that is away before it stops with
    #: the --resume line (environment variable SEAICE_TRACKING_WAIT, seconds)
    outage_wait_s: float = 900.0


TRACKING = TrackingDefaults()


@dataclass(frozen=True)
class PreprocessDefaults:
    out: str = "outputs/store"
    downsample: int = 1
    variables: str = "all"
    val_scenes: int = 10  # as the starter pack
    val_list: str = ""
    workers: int = 2
    overwrite: bool = False
    seed: int = 0


PREPROCESS = PreprocessDefaults()


@dataclass(frozen=True)
class TrainDefaults:
    """Good settings for real data (MMSeaIce's recipe where it applies, AdamW instead of SGD)."""

    store: str = "outputs/store"
    model: str = "unet"
    unet_filters: str = "32,32,64,64"
    deeplab_depth: int = 152
    pretrained: str = ""
    sic_head: str = "regression"
    variables: str = "all+encodings"
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.01
    momentum: float = 0.9
    scheduler: str = "cosine"  # cosine warm restarts, or plateau
    restart_epochs: int = 20
    epochs: int = 100
    batches_per_epoch: int = 500
    batch_size: int = 16
    patch_size: int = 256
    task_weights: str = "1,3,3"  # SIC, SOD, FLOE
    class_weights: str = "none"  # or "balanced" (inverse sqrt frequency), "balanced:SOD" (that head only)
    focal_gamma: float = 0.0
    augment: str = "all"
    class_balance: float = 0.0
    min_valid: float = 0.3
    grad_clip: float = 1.0
    amp: bool = True
    early_stopping: int = 20  # epochs without a better validation score
    val_tile: int = TILING.tile
    workers: int = 2
    device: str = "auto"
    seed: int = 0
    resume: str = ""
    out: str = "outputs/train"
    nproc: int = 1


TRAIN = TrainDefaults()


@dataclass(frozen=True)
class RegisterDefaults:
    experiment: str = "seaice"
    model_name: str = "seaice-charts"
    metric: str = "auto"  # test_combined when evaluated runs exist, else best_val_combined
    alias: str = "champion"
    stage: str = "Production"  # or none
    force: bool = False


REGISTER = RegisterDefaults()


@dataclass(frozen=True)
class PipelineDefaults:
    profile: str = "demo"  # demo: a few CPU minutes; full: real-size settings
    data_dir: str = ""  # empty: synthetic training scenes made on the fly
    test_dir: str = ""  # empty: synthetic test scenes (with references)
    model_name: str = "seaice-charts"
    out: str = "outputs/main"
    seed: int = 0


PIPELINE = PipelineDefaults()


@dataclass(frozen=True)
class EvaluateDefaults:
    """``seaice evaluate``; tiling as :class:`~seaice_mlflow.inference.engine.TileOptions`."""

    upload_package: str = ""  # empty: the package is only logged as an artifact of the run
    device: str = "auto"
    tile: int = TILING.tile  # working-grid pixels; rounded down to the network's stride
    overlap: int = TILING.overlap
    batch: int = TILING.batch  # tiles per forward pass


EVALUATE = EvaluateDefaults()


@dataclass(frozen=True)
class PredictDefaults:
    """``seaice predict``; tiling as :class:`~seaice_mlflow.inference.engine.TileOptions`."""

    out: str = "outputs/charts"
    device: str = "auto"
    upload_package: bool = False
    probabilities: bool = False
    tile: int = TILING.tile
    overlap: int = TILING.overlap
    batch: int = TILING.batch


PREDICT = PredictDefaults()


@dataclass(frozen=True)
class ServeDefaults:
    """``seaice serve`` (MLflow's scoring server)."""

    host: str = "127.0.0.1"
    port: int = 5001  # 5000 is the tracking UI's
    workers: int = 1


SERVE = ServeDefaults()
