"""Grad-CAM class-activation maps of a whole scene, tile by tile (Captum's LayerGradCam).

Task-agnostic: any :class:`~seaice_mlflow.models.spec.Network` (every one has ``heads``, the
module computing each output) and any :class:`~seaice_mlflow.core.tiling.TileSource`. The layer
is the input of the head's module, i.e. the features the head reads (a U-Net's last decoder
block, DeepLabV3's backbone output); the map of class ``c`` weights that layer's channels by the
gradient of the mean of the head's class-``c`` score over the tile (a regression head: its
value), keeps the positive part and is interpolated bilinearly to the tile. Memory holds one
tile and its maps at a time; ``sink`` receives each tile's maps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from seaice_mlflow.core.task import Head
from seaice_mlflow.core.tiling import TileSource, Window


@dataclass(frozen=True)
class CamTarget:
    """One map: a head and a class (``None``: a regression head's value)."""

    head: Head
    index: int | None

    @property
    def name(self) -> str:
        return f"gradcam_{self.head.name}" + ("" if self.index is None else f"_{self.index}")

    @property
    def label(self) -> str:
        return "value" if self.index is None else self.head.class_names[self.index]


def cam_targets(head: Head, classes: Sequence[int] | None = None) -> list[CamTarget]:
    """The maps of one head: each class of ``classes`` (default: every class), or its value."""
    if head.kind == "regression":
        return [CamTarget(head, None)]
    return [CamTarget(head, c) for c in (range(head.n_classes) if classes is None else classes)]


def tile_windows(shape: tuple[int, int], tile: int, stride: int = 1) -> list[Window]:
    """Non-overlapping windows covering ``shape``, their size a multiple of ``stride``."""
    size = max(stride, tile // stride * stride)
    return [Window(r, c, min(size, shape[0] - r), min(size, shape[1] - c))
            for r in range(0, shape[0], size) for c in range(0, shape[1], size)]  # fmt: skip


def tile_cams(network: nn.Module, targets: Sequence[CamTarget], inputs: torch.Tensor) -> np.ndarray:
    """Grad-CAM maps (len(targets), h, w) float32 of one tile ``inputs`` (1, C, h, w)."""
    from captum.attr import LayerAttribution, LayerGradCam  # 2 s to import

    def score(x: torch.Tensor, head: str, index: int) -> torch.Tensor:
        return network(x)[head][:, index].mean(dim=(1, 2))

    maps = []
    for target in targets:
        cam = LayerGradCam(score, network.heads[target.head.name])
        attribution = cam.attribute(inputs, additional_forward_args=(target.head.name, target.index or 0),
                                    attribute_to_layer_input=True, relu_attributions=True)  # fmt: skip
        full = LayerAttribution.interpolate(attribution, tuple(inputs.shape[-2:]), interpolate_mode="bilinear")
        maps.append(full[0, 0].detach().float().cpu().numpy())
    return np.stack(maps)


def scene_cams(
    network: nn.Module,
    targets: Sequence[CamTarget],
    source: TileSource,
    sink: Callable[[Window, np.ndarray], None],
    tile: int = 512,
    device: torch.device = torch.device("cpu"),
) -> None:
    """Grad-CAM of every target over the whole ``source``, one tile at a time, in float32 (no AMP)."""
    network = network.to(device).eval()
    stride = int(getattr(network, "stride", 1))
    for window in tile_windows(source.shape, tile, stride):
        inputs = torch.from_numpy(source.read(window))[None].to(device)
        sink(window, tile_cams(network, targets, inputs))
