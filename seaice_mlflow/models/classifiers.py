"""Patch classifiers (IceBench's second formulation): one class per patch, slid over a scene.

Backbones: ``patchcnn`` (three convolution blocks and a dense layer, after the Nansen Center's
s1_icetype_cnn), ``resnet18/50/101/152``, ``densenet121``, ``vgg16`` and ``alexnet``: the
torchvision definitions with random weights, a new first layer for the input channels and, in
place of the ImageNet classifier, one 1 x 1 convolution per task head on the pooled features.
``pretrained`` loads a local torchvision state dict into every layer but the first and the last
(:func:`~seaice_mlflow.models.weights.load_fitting`).

As a :class:`~seaice_mlflow.models.spec.Network`: in training mode an input patch (N, C, P, P) is
classified as a whole and its scores are spread over its pixels (so the pixel loss of the
segmentation models trains the classifier on the patch's pixels); in evaluation mode the
classifier slides over any input with step ``stride``: each ``stride`` x ``stride`` cell gets
the class of the P x P window centred on it (zero padding beyond the input), so a chart comes
out like a segmentation model's and tiled inference, the pyfunc model, evaluate and predict work
unchanged. ``stride`` is the network stride the tiled engine aligns its tiles on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from seaice_mlflow.core.errors import ModelSpecError
from seaice_mlflow.models.options import PATCH_BACKBONES, ClassifierOptions
from seaice_mlflow.models.weights import load_fitting

#: Windows classified per forward pass when sliding.
SLIDE_BATCH = 256


def _resnet(depth: int) -> Callable[[int], tuple[nn.Module, int]]:
    def build(in_channels: int) -> tuple[nn.Module, int]:
        net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        width, net.fc = net.fc.in_features, nn.Identity()
        return net, width

    return build


def _densenet121(in_channels: int) -> tuple[nn.Module, int]:
    net = torchvision.models.densenet121(weights=None)
    net.features.conv0 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    width, net.classifier = net.classifier.in_features, nn.Identity()
    return net, width


def _vgg16(in_channels: int) -> tuple[nn.Module, int]:
    net = torchvision.models.vgg16(weights=None)
    net.features[0] = nn.Conv2d(in_channels, 64, kernel_size=3, padding=1)
    width, net.classifier[-1] = net.classifier[-1].in_features, nn.Identity()
    return net, width


def _alexnet(in_channels: int) -> tuple[nn.Module, int]:
    net = torchvision.models.alexnet(weights=None)
    net.features[0] = nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2)
    width, net.classifier[-1] = net.classifier[-1].in_features, nn.Identity()
    return net, width


def _patchcnn(in_channels: int) -> tuple[nn.Module, int]:
    blocks, channels = [], in_channels
    for width in (32, 64, 128):
        blocks += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
        channels = width
    net = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 128), nn.ReLU(), nn.Dropout(0.3))
    return net, 128


def _builder(backbone: str) -> Callable[[int], tuple[nn.Module, int]]:
    if backbone.startswith("resnet"):
        return _resnet(int(backbone.removeprefix("resnet")))
    return {"patchcnn": _patchcnn, "densenet121": _densenet121, "vgg16": _vgg16, "alexnet": _alexnet}[backbone]


#: Backbone builders: in_channels -> (module mapping (N, C, P, P) to (N, width), width).
BACKBONES: dict[str, Callable[[int], tuple[nn.Module, int]]] = {name: _builder(name) for name in PATCH_BACKBONES}


class PatchClassifier(nn.Module):
    """A backbone of :data:`BACKBONES` with one output per head, as a chart network (module docstring)."""

    def __init__(self, backbone: str, in_channels: int, outputs: Mapping[str, int], options: ClassifierOptions):
        super().__init__()
        self.patch_size, self.stride = options.patch_size, options.step
        self.features, width = BACKBONES[backbone](in_channels)
        if options.pretrained:
            load_fitting(self.features, options.pretrained, f"torchvision {backbone}")
        self.heads = nn.ModuleDict({head: nn.Conv2d(width, k, kernel_size=1) for head, k in outputs.items()})
        try:  # a backbone that pools more than the patch allows fails here, not in the first batch
            with torch.no_grad():
                self.features.eval()(torch.zeros(1, in_channels, self.patch_size, self.patch_size))
        except RuntimeError as err:
            raise ModelSpecError("patch_size", f"{backbone} cannot classify {self.patch_size} px patches "
                                 f"({str(err).splitlines()[0]}); give a larger --patch-size") from None  # fmt: skip
        self.features.train()

    def classify(self, patches: Tensor) -> dict[str, Tensor]:
        """Scores (N, K, 1, 1) of each head for patches (N, C, P, P)."""
        features = self.features(patches).flatten(1)[:, :, None, None]
        return {head: module(features) for head, module in self.heads.items()}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if self.training:
            return {head: out.expand(-1, -1, *x.shape[-2:]) for head, out in self.classify(x).items()}
        return self.slide(x)

    def slide(self, x: Tensor) -> dict[str, Tensor]:
        """Each ``stride`` x ``stride`` cell's scores from the window centred on it, (N, K, H, W)."""
        n, c, h, w = x.shape
        step, size = self.stride, self.patch_size
        rows, cols = -(-h // step), -(-w // step)
        before = (size - step) // 2
        after = size - step - before
        padded = F.pad(x, (before, after + cols * step - w, before, after + rows * step - h))
        grids = {head: x.new_empty(n, module.out_channels, rows, cols) for head, module in self.heads.items()}
        for i in range(rows):
            strip = padded[:, :, i * step : i * step + size]  # (n, c, size, W')
            windows = strip.unfold(3, size, step).permute(0, 3, 1, 2, 4).reshape(n * cols, c, size, size)
            scores = [self.classify(windows[k : k + SLIDE_BATCH]) for k in range(0, len(windows), SLIDE_BATCH)]
            for head, grid in grids.items():
                values = torch.cat([s[head] for s in scores])[:, :, 0, 0]  # (n * cols, K)
                grid[:, :, i] = values.view(n, cols, -1).permute(0, 2, 1)
        return {head: grid.repeat_interleave(step, 2).repeat_interleave(step, 3)[:, :, :h, :w]
                for head, grid in grids.items()}  # fmt: skip


def classifier_builder(backbone: str) -> Callable[[int, Mapping[str, int], ClassifierOptions], PatchClassifier]:
    def build(in_channels: int, outputs: Mapping[str, int], options: ClassifierOptions) -> PatchClassifier:
        return PatchClassifier(backbone, in_channels, outputs, options)

    return build
