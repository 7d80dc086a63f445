"""Multi-task U-Net of the AutoICE starter pack and MMSeaIce: one shared encoder-decoder, one head per chart.

Encoder: a double convolution at ``filters[0]``, then for each further filter a 2x max-pool and a
double convolution, then a bridge (one more max-pool and double convolution at ``filters[-1]``).
The decoder mirrors it with bilinear 2x upsampling and skip concatenation. Each chart gets a 1x1
convolution on the last decoder features.

Upsampling uses ``align_corners=False`` (the starter pack has ``True``): then the network commutes
with shifts by multiples of its stride, so a scene charted tile by tile gets the classes of a
whole-scene pass (:mod:`seaice_mlflow.core.engine`); with ``True`` the interpolation grid
depends on the input size and tiles disagree near class boundaries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seaice_mlflow.models.options import UNetOptions


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Zero-pad the bottom and right of ``x`` (N, C, H, W) so that H and W are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return x


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """(3x3 conv without bias, batch norm, ReLU) twice, zero padding 1."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class Down(nn.Sequential):
    """2x max-pool then a double convolution."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.MaxPool2d(2), double_conv(in_channels, out_channels))


class Up(nn.Module):
    """Bilinear 2x upsampling, concatenation of the skip features, double convolution."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.conv = double_conv(in_channels + skip_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))


def build_unet(in_channels: int, outputs: Mapping[str, int], options: UNetOptions) -> UNet:
    return UNet(in_channels, outputs, filters=options.filters)


class UNet(nn.Module):
    """Multi-task U-Net returning ``{chart: (N, K, H, W)}`` for inputs of any size.

    Args:
        in_channels: number of input variables.
        outputs: output channels per chart, e.g. ``{"SIC": 1, "SOD": 6, "FLOE": 7}``.
        filters: channels of the encoder levels, e.g. ``(32, 32, 64, 64)`` (MMSeaIce) or
            ``(16, 32, 64, 64)`` (starter pack).
    """

    def __init__(self, in_channels: int, outputs: Mapping[str, int], filters: Sequence[int] = (32, 32, 64, 64)):
        super().__init__()
        filters = tuple(int(f) for f in filters)
        if not filters or min(filters) < 1:
            raise ValueError(f"unet filters must be a non-empty list of positive integers, got {filters}")
        #: Inputs are zero-padded to a multiple of this internally (one max-pool per filter level).
        self.stride = 2 ** len(filters)
        self.inc = double_conv(in_channels, filters[0])
        self.downs = nn.ModuleList(Down(a, b) for a, b in zip(filters[:-1], filters[1:]))
        self.bridge = Down(filters[-1], filters[-1])
        ups = [Up(filters[-1], filters[-1], filters[-1])]
        ups += [Up(filters[i], filters[i - 1], filters[i - 1]) for i in range(len(filters) - 1, 0, -1)]
        self.ups = nn.ModuleList(ups)
        self.heads = nn.ModuleDict({chart: nn.Conv2d(filters[0], k, 1) for chart, k in outputs.items()})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h, w = x.shape[-2:]
        skips = [self.inc(pad_to_multiple(x, self.stride))]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = self.bridge(skips[-1])
        for up, skip in zip(self.ups, reversed(skips)):
            y = up(y, skip)
        return {chart: head(y)[..., :h, :w] for chart, head in self.heads.items()}
