"""Defaults of the ``seaice optical`` commands: the single source for click options and logged params.

Options that mean what a ``seaice train`` option means carry its name (``--model``, ``--epochs``,
``--batches-per-epoch``, ``--batch-size``, ``--patch-size``, ``--lr``, ...); the defaults suit
photos of a few megapixels and a segmentation_models_pytorch U-Net.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from seaice_mlflow.core.defaults import DEVICES, option
from seaice_mlflow.tasks.optical.readers import MASK_KINDS, MaskKind

#: Class weights of the loss: none, or inverse square-root frequency over the training photos.
ClassWeights = Literal["none", "balanced"]
CLASS_WEIGHTS: tuple[ClassWeights, ...] = get_args(ClassWeights)


@dataclass(frozen=True)
class OpticalTrainDefaults:
    """``seaice optical train`` (besides the required ``--data-dir``)."""

    classes: str = option("", "Class table (config.json or a class file); empty: the folder's or its parent's.")
    masks: MaskKind = option("auto", "How label masks are read: auto (from the first label), ids or colour.",
                             choices=MASK_KINDS)  # fmt: skip
    model: str = option("smp_unet", "Architecture of the model registry: smp_unet, pspnet, deeplabv3plus, upernet "
                        "(segmentation_models_pytorch), unet, deeplabv3, ...")  # fmt: skip
    encoder: str = option("resnet18", "Encoder of the segmentation_models_pytorch architectures (random init).")
    pretrained: str = option("", "Local state dict of the encoder or backbone (none: random initialisation).")
    epochs: int = option(30, "Maximum number of epochs.", minimum=1)
    batches_per_epoch: int = option(50, "Training batches per epoch.", minimum=1)
    batch_size: int = option(8, "Crops per batch.", minimum=1)
    patch_size: int = option(256, "Crop size in photo pixels (random resized crops of the full-resolution photos).",
                             minimum=32)  # fmt: skip
    lr: float = option(1e-3, "Learning rate (AdamW, cosine schedule).")
    weight_decay: float = option(1e-4, "Weight decay.")
    class_weights: ClassWeights = option("none", "none or balanced (inverse square-root class frequency).",
                                         choices=CLASS_WEIGHTS)  # fmt: skip
    augment: bool = option(True, "Horizontal flips and colour jitter besides the random resized crops.")
    amp: bool = option(True, "Mixed precision on GPU.")
    val_tile: int = option(512, "Tile size of the whole-photo validation inference.", minimum=32)
    workers: int = option(2, "Crop loader worker processes.", minimum=0)
    device: str = option("auto", "auto, cpu or cuda.", choices=DEVICES)
    seed: int = option(0, "Seed of weights, crops and augmentations, and of the 20 % validation draw.")
    out: str = option("outputs/optical", "Folder for checkpoints (last.pt, best.pt).")


@dataclass(frozen=True)
class OpticalInferenceDefaults:
    """Tiled inference of an optical command (``evaluate``, ``predict``)."""

    device: str = option("auto", "auto, cpu or cuda.", choices=DEVICES)
    tile: int = option(512, "Inference tile size in photo pixels (memory follows the tile, not the photo).", minimum=32)


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
