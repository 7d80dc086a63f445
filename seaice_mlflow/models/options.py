"""Each architecture's options and names, without torch: what the command line needs of the models.

The network modules (:mod:`.unet`, :mod:`.deeplab`, :mod:`.classifiers`, :mod:`.segmentation`,
:mod:`.detection`) import torch and torchvision (2-8 s on a 2-core CPU); the ``seaice`` command
line only needs the architectures' names and their options to build its options and help, and
imports a network module when a network is built (:func:`~seaice_mlflow.models.spec.architectures`
imports its builders lazily). An options field may name the training option it comes from
(``metadata={"option": "unet_filters"}``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from seaice_mlflow.core.errors import ModelSpecError

#: Depths of torchvision's ResNets (DeepLabV3's backbone).
RESNET_DEPTHS = (18, 34, 50, 101, 152)
#: Backbones of the patch classifiers (:mod:`.classifiers`).
PatchBackbone = Literal["patchcnn", "resnet18", "resnet50", "resnet101", "resnet152", "densenet121", "vgg16", "alexnet"]
PATCH_BACKBONES: tuple[PatchBackbone, ...] = get_args(PatchBackbone)
#: segmentation_models_pytorch's architectures: registry name -> the library's class name.
SMP_ARCHITECTURES = {"smp_unet": "Unet", "pspnet": "PSPNet", "deeplabv3plus": "DeepLabV3Plus", "upernet": "UPerNet"}
#: ResNets the floe detector's backbone may be (torchvision's, random initialisation).
FloeBackbone = Literal["resnet18", "resnet34", "resnet50"]
FLOE_BACKBONES: tuple[FloeBackbone, ...] = get_args(FloeBackbone)


@dataclass(frozen=True)
class UNetOptions:
    """The U-Net's options: channels of the encoder levels (one max-pool each)."""

    filters: tuple[int, ...] = field(default=(32, 32, 64, 64), metadata={"option": "unet_filters"})

    def __post_init__(self) -> None:
        if not self.filters or any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in self.filters):
            raise ModelSpecError("unet_filters", f"must be positive integers, got {self.filters!r}")


@dataclass(frozen=True)
class DeepLabOptions:
    """DeepLabV3's options: the ResNet depth, an optional local ResNet state dict for the backbone."""

    depth: int = field(default=152, metadata={"option": "deeplab_depth"})
    pretrained: str | None = None

    def __post_init__(self) -> None:
        if self.depth not in RESNET_DEPTHS:
            raise ModelSpecError(
                "deeplab_depth", f"no ResNet of depth {self.depth!r}; choose among {', '.join(map(str, RESNET_DEPTHS))}"
            )


@dataclass(frozen=True)
class ClassifierOptions:
    """A patch classifier's options: the patch size it classifies, the sliding step (0: a
    quarter of the patch), an optional local torchvision state dict."""

    patch_size: int = field(default=64, metadata={"option": "patch_size"})
    stride: int = field(default=0, metadata={"option": "patch_stride"})
    pretrained: str | None = None

    def __post_init__(self) -> None:
        if self.patch_size < 16:
            raise ModelSpecError("patch_size", f"a patch classifier needs 16 px patches or more, got {self.patch_size}")
        if self.stride < 0 or self.stride > self.patch_size:
            raise ModelSpecError("patch_stride", f"must be between 0 (a quarter of the patch) and the patch size "
                                 f"{self.patch_size}, got {self.stride}")  # fmt: skip

    @property
    def step(self) -> int:
        return patch_step(self.patch_size, self.stride)


def patch_step(patch_size: int, stride: int = 0) -> int:
    """The sliding (and patch-grid) step: ``stride``, or a quarter of the patch when 0."""
    return stride or max(1, patch_size // 4)


@dataclass(frozen=True)
class SmpOptions:
    """The encoder (any name ``segmentation_models_pytorch`` knows) and an optional local state
    dict of it."""

    encoder: str = field(default="resnet34", metadata={"option": "encoder"})
    pretrained: str | None = None


@dataclass(frozen=True)
class FloeNetOptions:
    """The backbone (``--encoder``), the transform's image size, the proposals per image that train
    the box and mask heads (most of a training step's work), the detections kept per image and an
    optional local state dict of the backbone."""

    backbone: str = field(default="resnet18", metadata={"option": "encoder"})
    min_size: int = 512  # short side of the images the detector sees (pixels)
    max_size: int = 1024  # their long side at most
    rois_per_image: int = 512  # proposals sampled per training image, a quarter of them floes at most
    max_floes: int = 300  # detections kept per image
    pretrained: str | None = None
