"""DeepLabV3 on a truncated torchvision ResNet, one ASPP head per chart (the seed paper's model).

The ResNet gets a new first convolution for the input variables and is cut after ``layer3``
(output stride 16, no dilation). Each head is torchvision's ASPP (rates 12/24/36, 32 channels)
whose global pooling branch is replaced by a local 2x2 average pooling, so that a whole scene
and a training patch see the same operator, then a 3x3 conv, BN, ReLU, a 1x1 conv to the chart's
outputs and bilinear upsampling x16.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import models as tvm
from torchvision.models.segmentation.deeplabv3 import ASPP, ASPPPooling

from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.models.options import RESNET_DEPTHS, DeepLabOptions
from seaice_mlflow.models.unet import pad_to_multiple
from seaice_mlflow.models.weights import read_state_dict

#: torchvision ResNet constructors by depth.
RESNETS: Mapping[int, Callable[..., tvm.ResNet]] = {depth: getattr(tvm, f"resnet{depth}") for depth in RESNET_DEPTHS}
ATROUS_RATES = (12, 24, 36)
HEAD_CHANNELS = 32
OUTPUT_STRIDE = 16
#: Backbone state-dict keys that a truncated ResNet does not use.
UNUSED_PREFIXES = ("layer4.", "fc.")


def truncated_resnet(depth: int, in_channels: int) -> tuple[nn.Sequential, int]:
    """ResNet-``depth`` stem, layer1..layer3 with a new first conv; returns it and its output channels.

    Module names match torchvision's, so a ResNet state dict (less layer4 and fc) loads into it.
    """
    if depth not in RESNETS:
        raise ValueError(f"no ResNet of depth {depth}; choose among {', '.join(map(str, RESNETS))}")
    resnet = RESNETS[depth](weights=None)
    backbone = nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False),
            bn1=resnet.bn1,
            relu=resnet.relu,
            maxpool=resnet.maxpool,
            layer1=resnet.layer1,
            layer2=resnet.layer2,
            layer3=resnet.layer3,
        )
    )
    return backbone, 256 * type(resnet.layer3[-1]).expansion


class DeepLabHead(nn.Sequential):
    """ASPP with local pooling, 3x3 conv, BN, ReLU, 1x1 conv to ``out_channels`` (at feature resolution)."""

    def __init__(self, in_channels: int, out_channels: int, channels: int = HEAD_CHANNELS):
        aspp = ASPP(in_channels, list(ATROUS_RATES), out_channels=channels)
        pooling = aspp.convs[-1]
        if not isinstance(pooling, ASPPPooling) or not isinstance(pooling[0], nn.AdaptiveAvgPool2d):
            raise RuntimeError("unexpected torchvision ASPP layout: cannot find its pooling branch")
        # Local instead of global pooling; the branch interpolates back to its input size itself.
        pooling[0] = nn.AvgPool2d(kernel_size=2, stride=2, ceil_mode=True)
        super().__init__(
            aspp,
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, out_channels, 1),
        )


def build_deeplabv3(in_channels: int, outputs: Mapping[str, int], options: DeepLabOptions) -> DeepLabV3:
    return DeepLabV3(in_channels, outputs, depth=options.depth, pretrained=options.pretrained)


class DeepLabV3(nn.Module):
    """Multi-task DeepLabV3 returning ``{chart: (N, K, H, W)}`` for inputs of any size.

    Args:
        in_channels: number of input variables.
        outputs: output channels per chart, e.g. ``{"SIC": 1, "SOD": 6, "FLOE": 7}``.
        depth: ResNet depth (18, 34, 50, 101 or 152).
        pretrained: optional path of a torchvision ResNet state dict to initialise the backbone.
    """

    def __init__(
        self, in_channels: int, outputs: Mapping[str, int], depth: int = 152, pretrained: str | Path | None = None
    ):
        super().__init__()
        #: Inputs are zero-padded to a multiple of this internally.
        self.stride = OUTPUT_STRIDE
        self.backbone, features = truncated_resnet(depth, in_channels)
        self.heads = nn.ModuleDict({chart: DeepLabHead(features, k) for chart, k in outputs.items()})
        if pretrained:
            load_backbone(self.backbone, pretrained)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h, w = x.shape[-2:]
        features = self.backbone(pad_to_multiple(x, self.stride))
        return {
            chart: F.interpolate(head(features), scale_factor=self.stride, mode="bilinear", align_corners=False)[
                ..., :h, :w
            ]
            for chart, head in self.heads.items()
        }


def adapt_first_conv(weight: Tensor, in_channels: int) -> Tensor:
    """First-conv weights (64, c, k, k) for ``in_channels`` inputs: the channel mean, repeated and
    scaled by c/in_channels.

    The scaling keeps the response to an input equal in every channel; weights that already
    have ``in_channels`` inputs are returned unchanged.
    """
    source = weight.shape[1]
    if source == in_channels:
        return weight
    return weight.mean(dim=1, keepdim=True).repeat(1, in_channels, 1, 1) * (source / in_channels)


def load_backbone(backbone: nn.Sequential, path: str | Path) -> None:
    """Initialise a :func:`truncated_resnet` from a local torchvision ResNet state dict.

    ``layer4`` and ``fc`` weights are ignored and the first conv is adapted to the input
    channels; a missing, unreadable or non-matching file raises :class:`ParameterError`.
    """
    state = read_state_dict(path, "torchvision ResNet")
    if "conv1.weight" not in state:
        raise ParameterError("pretrained", f"{path} is not a torchvision ResNet state dict (no conv1.weight)")
    state = {k: v for k, v in state.items() if not k.startswith(UNUSED_PREFIXES)}
    state["conv1.weight"] = adapt_first_conv(state["conv1.weight"], backbone.conv1.in_channels)
    try:
        backbone.load_state_dict(state, strict=True)
    except RuntimeError as err:
        problem = str(err).replace("\n", " ").replace("\t", "")
        raise ParameterError("pretrained", f"{path} does not fit a truncated ResNet of this depth: {problem}") from None
