"""Defaults of every command: the single source for click options, MLproject and logged params.

These are the AutoICE commands' options; the task-agnostic ones (tiling, device, tracking,
register, serve) are in :mod:`seaice_mlflow.core.defaults`. Options built from a dataclass here
carry their help text too (:func:`~seaice_mlflow.core.defaults.option`).

Defaults are the good settings for real data, not toy ones; the ``main`` pipeline's demo
profile scales them down explicitly. An option that acts only with some others carries an
``applies`` rule (an architecture's own options, ``--momentum`` with SGD, the patch classifiers'
options): a training run logs as params only the options that apply, and all of them in its
``config.json`` (46 params of a U-Net run were 37, several of them about other networks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from seaice_mlflow.core.defaults import BASELINES, DEVICES, TILING, InferenceDefaults, option
from seaice_mlflow.models import architecture_names
from seaice_mlflow.models.spec import takes_option, trains_level

#: ``--by`` and ``--season-table`` of the commands that score per stratum (:mod:`.strata`).
BY_HELP = ("Also score per stratum, pooled over its scenes: season (melt/freeze), calendar_season, region, "
           "service, comma separated (e.g. season,region).")  # fmt: skip
SEASON_TABLE_HELP = ("Melt/freeze per scene: a CSV scene,season or IceBench's {Melt,Freeze}_<location>_*.json lists "
                     "(a file or a folder); without one a month/latitude rule, labelled an approximation.")  # fmt: skip
PROFILES = ("smoke", "demo", "full")  # of the `main` pipeline (pipeline.PROFILES)
#: ``--land``: training patches may hold land pixels, or a window holding any is drawn again.
LandRule = Literal["include", "exclude"]
LAND_RULES: tuple[LandRule, ...] = get_args(LandRule)
#: ``seaice study KIND`` (:mod:`seaice_mlflow.tasks.autoice.study` says what each varies).
StudyKind = Literal["season", "region", "downsample", "patch-size", "data-size", "data-prep", "model"]
STUDY_KINDS: tuple[StudyKind, ...] = get_args(StudyKind)
#: How a patch-size study sizes its batches: the same pixels per batch, or the same batch size.
PatchBatch = Literal["pixels", "batch"]
PATCH_BATCHES: tuple[PatchBatch, ...] = get_args(PatchBatch)


@dataclass(frozen=True)
class PreprocessDefaults:
    """``seaice preprocess`` (besides the required ``--data-dir``)."""

    out: str = option("outputs/store", "Store folder to create or update.")
    downsample: int = option(
        1, "Store the scenes downsampled xK (mean for inputs, centre pixel for charts).", minimum=1
    )
    variables: str = option("all", "Inputs to store: 'all' (the 24 scene variables) or a comma list.")
    val_scenes: str = option(
        "auto",
        "Training scenes held out for validation, drawn with --seed: a number, or auto (10 % of the "
        "training scenes, at least 1 when there are 2 or more, at most the starter pack's 10).",
    )
    val_list: str = option("", "Text file with one validation scene id per line (replaces --val-scenes).")
    workers: int = option(2, "Scenes converted in parallel.", minimum=1)
    overwrite: bool = option(False, "Convert every scene again, even those already in the store.")
    seed: int = option(0, "Seed of the validation draw.")


PREPROCESS = PreprocessDefaults()


@dataclass(frozen=True)
class TrainDefaults:
    """Good settings for real data (MMSeaIce's recipe where it applies, AdamW instead of SGD)."""

    store: str = option("outputs/store", "Training store made by `seaice preprocess`.")
    model: str = option("unet", f"Network architecture: {', '.join(architecture_names())} (models.spec).")
    unet_filters: str = option("32,32,64,64", "U-Net filters per level (starter pack 16,32,64,64; MMSeaIce "
                               "32,32,64,64).", applies=takes_option("unet_filters"))  # fmt: skip
    deeplab_depth: int = option(152, "DeepLabV3 ResNet depth (18, 34, 50, 101, 152), truncated after layer3.",
                                applies=takes_option("deeplab_depth"))  # fmt: skip
    encoder: str = option("resnet34", "Encoder of smp_unet, pspnet, deeplabv3plus and upernet (any of "
                          "segmentation_models_pytorch's; random initialisation).",
                          applies=takes_option("encoder"))  # fmt: skip
    pretrained: str = option("", "Local state dict of the backbone (DeepLabV3's ResNet, a patch classifier's "
                             "torchvision network, an smp encoder); none: random initialisation.",
                             applies=takes_option("pretrained"))  # fmt: skip
    sic_head: str = option(
        "regression", "SIC as regression on the class index (MSE, rounded) or 11-way classification."
    )
    variables: str = option(
        "all+encodings", "Inputs: all (24), all+encodings (+ month, sin/cos lat/lon), compact, or a comma list."
    )
    optimizer: str = option("adamw", "adamw or sgd.")
    lr: float = option(1e-3, "Learning rate.")
    weight_decay: float = option(0.01, "Weight decay.")
    momentum: float = option(0.9, "SGD momentum.", applies=lambda options: options.optimizer == "sgd")
    scheduler: str = option(
        "cosine", "cosine (warm restarts every --restart-epochs) or plateau (x0.5 after 4 flat epochs)."
    )
    restart_epochs: int = option(
        20, "Epochs between cosine warm restarts.", applies=lambda options: options.scheduler == "cosine"
    )
    epochs: int = option(100, "Maximum number of epochs.")
    batches_per_epoch: int = option(500, "Training batches per epoch.")
    batch_size: int = option(16, "Patches per batch (per process).")
    patch_size: int = option(256, "Patch size in working-grid pixels.")
    task_weights: str = option("1,3,3", "Loss weights of SIC,SOD,FLOE.")
    class_weights: str = option(
        "none",
        "Weigh classes by inverse square-root frequency in the training scenes: "
        "none, balanced (every softmax head) or balanced:SOD (the heads named, "
        "comma list).",
    )
    focal_gamma: float = option(0.0, "Focal loss gamma for the classification heads (0: cross entropy).")
    augment: str = option("all", "Augmentations: all, none, or a comma list of flip,rot90,scale,cutmix.")
    class_balance: float = option(0.0, "Fraction of patches centred on a rare SOD/FLOE class.")
    min_valid: float = option(0.3, "Reject patches with a smaller valid-SIC fraction (after --border-distance).")
    border_distance: int = option(
        0,
        "Ignore chart pixels closer than this many 80 m pixels to a chart-polygon border, where "
        "charts are least reliable (0: off; IceBench: 10, i.e. 20 px at 40 m).",
        minimum=0,
        maximum=255,
    )
    land: LandRule = option(
        "include",
        "include: patches may hold land; exclude: draw again a patch holding any land pixel (IceBench's land masking).",
        choices=LAND_RULES,
    )
    scenes_where: str = option(
        "",
        "Train only on the training scenes whose metadata match, e.g. season=freeze,region=North|NorthEast "
        "(keys season, calendar_season, region, service); validation scenes are kept.",
    )
    season_table: str = option("", SEASON_TABLE_HELP, applies=lambda options: bool(options.scenes_where))
    scene_fraction: float = option(
        1.0,
        "Train on this fraction of the training scenes (after --scenes-where; at least one), drawn with --seed; "
        "with one seed a smaller fraction's scenes are among a larger one's (IceBench's data-size study).",
    )
    patch_stride: int = option(
        0,
        "Patch classifiers: step of the grid of training patches and of the sliding chart (0: a quarter of "
        "--patch-size).",
        minimum=0,
        applies=takes_option("patch_stride"),
    )
    patch_charts: str = option("SOD", "Patch classifiers: charts whose homogeneity selects the training patches "
                               "(comma list; the first one's class labels the patch).",
                               applies=trains_level("patch"))  # fmt: skip
    patch_purity: float = option(
        1.0,
        "Patch classifiers: share of a patch's pixels its class must cover (1: IceBench's single class, no fill).",
        applies=trains_level("patch"),
    )
    grad_clip: float = option(1.0, "Clip the gradient norm (0: off).")
    amp: bool = option(True, "Mixed precision on GPU.")
    early_stopping: int = option(20, "Stop after this many epochs without a better validation score (0: never).")
    max_minutes: float = option(0.0, "Stop after the first epoch that ends past this many minutes of training "
                                "(0: no limit; counted from this start, a resumed run gets them again).")  # fmt: skip
    val_tile: int = option(TILING.tile, "Tile size of the full-scene validation inference.")
    workers: int = option(2, "Patch loader worker processes.")
    device: str = option("auto", "auto, cpu or cuda.")
    seed: int = option(0, "Seed of weights, patches and augmentations.")
    resume: str = option("", "Continue from a checkpoint file, a folder with last.pt, or an MLflow run id.",
                         applies=lambda options: bool(options.resume))  # fmt: skip
    out: str = option("outputs/train", "Folder for checkpoints (last.pt, best.pt).")
    nproc: int = option(1, "Processes for distributed data parallel training (re-runs itself under torchrun).")


TRAIN = TrainDefaults()


@dataclass(frozen=True)
class PipelineDefaults:
    """``seaice pipeline`` (the MLproject's ``main``)."""

    profile: str = option(
        "demo",
        "smoke: a one-minute installation check; demo: small synthetic scenes and a "
        "short training (a few CPU minutes); full: real-size settings.",
        choices=PROFILES,
    )
    data_dir: str = option("", "Training scenes; empty: synthetic scenes made on the fly.")
    test_dir: str = option("", "Test scenes with references; empty: synthetic ones.")
    model_name: str = option("seaice-charts", "Registered model name.")
    out: str = option("outputs/main", "Working folder (data, store, charts).")
    seed: int = option(0, "Seed of data and training.")


@dataclass(frozen=True)
class EvaluateDefaults(InferenceDefaults):
    """``seaice evaluate`` (besides the required ``--model-uri`` and ``--data-dir``)."""

    upload_package: str = option(
        "", "Also write the AutoICE upload_package.nc here (it is always logged with the run)."
    )
    by: str = option("", BY_HELP)
    season_table: str = option("", SEASON_TABLE_HELP)


@dataclass(frozen=True)
class PredictDefaults(InferenceDefaults):
    """``seaice predict`` (besides the required ``--model-uri`` and ``--scenes``)."""

    out: str = option("outputs/charts", "Folder for the products (--format) and <scene_id>_charts.png.")
    upload_package: bool = option(
        False, "Also write upload_package.nc (AutoICE format) of the predicted scenes to --out."
    )
    probabilities: bool = option(
        False,
        "Also write class probabilities (uint8 percent; SIC_value in percent for "
        "a regressed SIC); memory then grows with the scene.",
    )
    format: str = option(
        "netcdf",
        "Products per scene, a comma list of: netcdf (<scene_id>_charts.nc), geotiff (<scene_id>_<chart>.tif "
        "per chart: class indices, colour table, nodata 255) and vector (<scene_id>_charts.gpkg: polygons with "
        "SIGRID-3 codes).",
    )
    crs: str = option(
        "",
        "GeoTIFFs and polygons in this CRS, e.g. EPSG:3413 (any EPSG code): the GeoTIFFs warped to its grid "
        "(nearest); empty: GeoTIFFs on the scene grid with the lat/lon tie points as GCPs, polygons in EPSG:4326.",
    )
    pixel_size: float = option(
        0.0,
        "Pixel size of GeoTIFFs warped to --crs, in its units (metres for EPSG:3413); 0: rasterio's default "
        "(about the scene's 80 m).",
    )
    uncertainty: bool = option(
        False,
        "Also write per-pixel uncertainty layers in every product: <chart>_confidence (maximum probability) and "
        "<chart>_entropy, SIC_spread for a regressed SIC (across tile overlaps and members) and, for an ensemble, "
        "<chart>_disagreement (members' mutual information).",
    )
    dask: str = option(
        "",
        "Chart the scenes as Dask tasks: local:N (a LocalCluster of N worker processes on this machine) or a "
        "scheduler address (tcp://HOST:PORT); empty: one after another in this process.",
    )
    overwrite: bool = option(
        False, "Chart every scene again; by default a scene whose products exist from the same model is skipped."
    )


@dataclass(frozen=True)
class TuneDefaults:
    """``seaice tune`` (besides the required ``--store``)."""

    out: str = option("outputs/tune", "Folder of the trials' checkpoints (and of optuna.db when the tracking store "
                      "is not sqlite).")  # fmt: skip
    trials: int = option(20, "Finished trials of the study in all; a re-run runs only the missing ones.", minimum=1)
    timeout: int = option(0, "Start no trial after this many seconds (0: no limit).", minimum=0)
    space: str = option("lr=1e-4:1e-2:log", "Search space, comma separated: name=low:high[:log] for a number, "
                        "name=a|b|c for a choice; names are `seaice train` options.")  # fmt: skip
    fixed: str = option("", "Train options held fixed for every trial (name=value, comma separated); the others "
                        "take their train defaults.")  # fmt: skip
    study_name: str = option("", "Optuna study; empty: tune-<store folder>-<key of the store's data, --space and "
                             "--fixed>. The same study resumes; on other data it is refused.")  # fmt: skip
    storage: str = option("", "Optuna storage URL; empty: optuna.db beside a sqlite tracking store, else in --out.")
    prune_after: int = option(2, "Epochs a trial trains before the median pruner may stop it.", minimum=0)
    seed: int = option(0, "Seed of the TPE sampler.")
    device: str = option("auto", "auto: the GPU when there is one.", choices=DEVICES)


@dataclass(frozen=True)
class StudyDefaults:
    """``seaice study KIND`` (kinds and values: :mod:`seaice_mlflow.tasks.autoice.study`)."""

    data_dir: str = option("", "Training scenes; empty: synthetic scenes made on the fly (as `seaice pipeline` does).")
    test_dir: str = option("", "Test scenes with references; empty only with an empty --data-dir (synthetic ones).")
    values: str = option(
        "",
        "Settings to compare, comma separated (semicolon separated when a setting holds commas, e.g. "
        "unet_filters=8,8,16,16;unet_filters=16,32,64,64); empty: the kind's defaults for the profile.",
    )
    seeds: str = option("0", "Training seeds, comma separated: each setting trains once per seed (mean and spread).")
    profile: str = option(
        "demo", "Scene count and size (synthetic data) and training settings, as `seaice pipeline`.", choices=PROFILES
    )
    fixed: str = option("", "Train options held fixed for every setting (name=value, comma separated), over the "
                        "profile's.")  # fmt: skip
    patch_batch: PatchBatch = option(
        "pixels",
        "patch-size studies: pixels keeps the profile's pixels per batch (the batch size scaled), batch keeps "
        "its batch size.",
        choices=PATCH_BATCHES,
    )
    season_table: str = option("", SEASON_TABLE_HELP)
    data_seed: int = option(0, "Seed of the synthetic scenes and of the validation scenes' draw.")
    out: str = option("outputs/study", "Working folder (synthetic scenes, stores, checkpoints).")
    device: str = option("auto", "auto: the GPU when there is one.", choices=DEVICES)


@dataclass(frozen=True)
class ExplainDefaults:
    """``seaice explain`` (besides the required ``--model-uri`` and ``--data-dir``)."""

    methods: str = option("ig,ablation,gradshap,deepliftshap,permutation", "Attribution methods, comma separated: "
                          "ig, ablation, gradshap, deepliftshap (Captum) and permutation (score drop).")  # fmt: skip
    charts: str = option("", "Charts to explain, comma separated; empty: every chart of the model.")
    classes: str = option("all", "Classes explained besides each chart as a whole: all (those in the patches), "
                          "none, or CHART=A|B,... by index or name (e.g. SOD=3|old ice).")  # fmt: skip
    patches: int = option(32, "Patches sampled from the scenes: distinct windows spread over them, at most as many "
                          "as they hold; read and attributed in batches.", minimum=1)  # fmt: skip
    patch_size: int = option(128, "Patch size in the model's working-grid pixels.", minimum=16)
    baseline: str = option("zero", "Reference input: zero (the inputs' mean), mean (each patch's channel means) or "
                           "blur (Gaussian-blurred patch).", choices=BASELINES)  # fmt: skip
    groups: str = option("default", "Input groups: default (SAR, incidence angle, distance map, AMSR2 by frequency, "
                         "ERA5 fields, month, position), none, or a JSON file {group: [variables]}.")  # fmt: skip
    steps: int = option(16, "Integrated Gradients' steps and GradientSHAP's samples.", minimum=2)
    repeats: int = option(3, "Shuffles per feature for the permutation importance (its spread).", minimum=1)
    gradcam: bool = option(False, "Also write Grad-CAM maps per chart and class of every scene (netCDF and PNG).")
    tile: int = option(512, "Grad-CAM tile size in working-grid pixels (memory holds one tile).", minimum=16)
    seed: int = option(0, "Seed of the patch draw and the shuffles.")
    out: str = option("outputs/explain", "Folder for importance.csv, importance.png and the Grad-CAM files.")
    json: bool = option(False, "Print the importance table as JSON.")
    device: str = option("auto", "auto: the GPU when there is one.", choices=DEVICES)
