"""Defaults of the ``seaice optical`` commands: the single source for click options and logged params.

Options that mean what a ``seaice train`` option means carry its name (``--model``, ``--epochs``,
``--batches-per-epoch``, ``--batch-size``, ``--patch-size``, ``--lr``, ...); the defaults suit
photos of a few megapixels and a segmentation_models_pytorch U-Net. Every options dataclass checks its
values when it is made (:class:`~seaice_mlflow.core.defaults.CheckedOptions`: finite floats, ranges,
choices), so ``--lr nan`` is refused naming ``--lr`` before any run, as ``seaice train`` refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from seaice_mlflow.core.defaults import (
    DEFAULT_EXPERIMENTS,
    DEVICES,
    TASK_FAMILIES,
    CheckedOptions,
    RegisterDefaults,
    option,
)
from seaice_mlflow.models.spec import takes_option, trains_level

#: How labels of the images-labels and split-folders layouts are read (:mod:`.readers`).
MaskKind = Literal["auto", "ids", "colour"]
MASK_KINDS: tuple[MaskKind, ...] = get_args(MaskKind)
#: ``seaice optical synth``: the photo size by default and the smallest, in pixels (rows, columns).
SYNTH_SIZE = (256, 384)
SYNTH_MIN_SIZE = 32
#: Task families of the optical models (``seaice optical register --task``).
OPTICAL_TASKS = tuple(t for t in TASK_FAMILIES if t.startswith("optical"))
#: Class weights of the loss: none, or inverse square-root frequency over the training photos.
ClassWeights = Literal["none", "balanced"]
CLASS_WEIGHTS: tuple[ClassWeights, ...] = get_args(ClassWeights)


@dataclass(frozen=True)
class OpticalTrainDefaults(CheckedOptions):
    """``seaice optical train`` (besides the required ``--data-dir``)."""

    classes: str = option("", "Class table (config.json or a class file); empty: the folder's or its parent's.")
    masks: MaskKind = option("auto", "How label masks are read: auto (from the first label), ids or colour.",
                             choices=MASK_KINDS)  # fmt: skip
    model: str = option("smp_unet", "Architecture of the model registry: smp_unet, pspnet, deeplabv3plus, upernet "
                        "(segmentation_models_pytorch), unet, deeplabv3, ...; maskrcnn for floe instances")  # fmt: skip
    encoder: str = option("resnet18", "Encoder of the segmentation_models_pytorch architectures, or the ResNet of "
                          "maskrcnn (resnet18, resnet34, resnet50); random init.",
                          applies=takes_option("encoder"))  # fmt: skip
    pretrained: str = option("", "Local state dict of the encoder or backbone (none: random initialisation).",
                             applies=takes_option("pretrained"))  # fmt: skip
    floe_classes: str = option("ice floe", "Classes whose connected regions are floe instances (maskrcnn), names "
                               "separated by commas.", applies=trains_level("instance"))  # fmt: skip
    min_floe_pixels: int = option(16, "Smallest floe instance in pixels of a photo or a training crop (maskrcnn).",
                                  minimum=1, applies=trains_level("instance"))  # fmt: skip
    epochs: int = option(30, "Maximum number of epochs.", minimum=1)
    batches_per_epoch: int = option(50, "Training batches per epoch.", minimum=1)
    batch_size: int = option(8, "Crops per batch.", minimum=1)
    patch_size: int = option(256, "Crop size in photo pixels (random resized crops of the full-resolution photos).",
                             minimum=32)  # fmt: skip
    lr: float = option(1e-3, "Learning rate (AdamW, cosine schedule).", minimum=0, min_open=True)
    weight_decay: float = option(1e-4, "Weight decay.", minimum=0)
    class_weights: ClassWeights = option("none", "none or balanced (inverse square-root class frequency).",
                                         choices=CLASS_WEIGHTS)  # fmt: skip
    augment: bool = option(True, "Horizontal flips and colour jitter besides the random resized crops.")
    amp: bool = option(True, "Mixed precision on GPU.")
    val_tile: int = option(512, "Tile size of the whole-photo validation inference.", minimum=32)
    workers: int = option(2, "Crop loader worker processes.", minimum=0)
    device: str = option("auto", "auto, cpu or cuda.", choices=DEVICES)
    seed: int = option(0, "Seed of weights, crops and augmentations, and of the 20 % validation draw.", minimum=0)
    out: str = option("outputs/optical", "Folder for checkpoints (last.pt, best.pt).")


@dataclass(frozen=True)
class OpticalInferenceDefaults(CheckedOptions):
    """Tiled inference of an optical command (``evaluate``, ``predict``) and of the logged model.

    1024 px tiles with 384 px overlap agreed with one whole-photo pass on 99.999 % of the pixels of a
    2048 x 1536 photo with the bench's trained U-Net (512/64: 99.44 %, 640/160: 99.70 %, 768/256: 99.96 %)
    and took no longer than 512/64 (benchmarks/bench_optical.py, docs/experiments.md): the encoders'
    context spans far, so the cut-off quarter of the overlap must be wide.
    """

    device: str = option("auto", "auto, cpu or cuda.", choices=DEVICES)
    tile: int = option(1024, "Inference tile size in photo pixels (memory follows the tile, not the photo).",
                       minimum=32)  # fmt: skip
    overlap: int = option(384, "Overlap of neighbouring tiles in photo pixels (blended; at most half a tile).",
                          minimum=0)  # fmt: skip


OPTICAL_INFERENCE = OpticalInferenceDefaults()


@dataclass(frozen=True)
class OpticalEvaluateDefaults(OpticalInferenceDefaults):
    """``seaice optical evaluate`` (besides the required ``--model-uri`` and ``--data-dir``)."""

    classes: str = option("", "Class table (config.json or a class file); empty: the folder's or its parent's.")
    masks: MaskKind = option("auto", "How label masks are read: auto (from the first label), ids or colour.",
                             choices=MASK_KINDS)  # fmt: skip
    json: bool = option(False, "Print the scores as one JSON object.")


@dataclass(frozen=True)
class OpticalPredictDefaults(OpticalInferenceDefaults):
    """``seaice optical predict`` (besides the required ``--model-uri`` and ``--images``)."""

    out: str = option("outputs/optical/masks", "Folder for <stem>_mask.png, <stem>_color_mask.png and "
                      "class_fractions.json.")  # fmt: skip


@dataclass(frozen=True)
class OpticalRegisterDefaults(RegisterDefaults):
    """``seaice optical register``: ``seaice register`` for photo models, under their own name."""

    experiment: str = option(DEFAULT_EXPERIMENTS["optical"], "Experiment whose FINISHED runs are ranked.")
    model_name: str = option("seaice-optical", "Registered model name.")
    task: str = option("optical", "Task family of the models ranked: optical (photo masks) or optical_floes "
                       "(floe instances).", choices=OPTICAL_TASKS)  # fmt: skip


#: Profiles of ``seaice optical pipeline`` (``tasks/optical/steps/main.PROFILES``).
PROFILES = ("smoke", "demo")


@dataclass(frozen=True)
class OpticalPipelineDefaults:
    """``seaice optical pipeline`` (the MLproject's ``optical_main``)."""

    profile: str = option("demo", "smoke: a one-minute installation check; demo: synthetic photos and a short "
                          "training (a few CPU minutes).", choices=PROFILES)  # fmt: skip
    data_dir: str = option("", "Labelled training photos (any layout); empty: synthetic photos made on the fly.")
    test_dir: str = option("", "Labelled held-out photos (evaluated, then predicted); empty: synthetic ones.")
    model_name: str = option("seaice-optical", "Registered model name.")
    out: str = option("outputs/optical_main", "Working folder (photos, checkpoints, masks).")
    seed: int = option(0, "Seed of photos and training.")
