"""Segmentation networks: the architecture registry, the network contract and helpers on networks.

Every network maps an input (N, C, H, W) of any size to ``{head: (N, K, H, W)}`` with one output
per task head (:class:`~seaice_mlflow.models.spec.Network`); adding an architecture is one
module here and one entry of :func:`~seaice_mlflow.models.spec.architectures`. The one exception
is ``maskrcnn`` (level ``instance``, :mod:`~seaice_mlflow.models.detection`), a detector of ice
floes in photos with torchvision's detection interface instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seaice_mlflow.core.errors import ModelSpecError
from seaice_mlflow.models.options import DeepLabOptions, UNetOptions
from seaice_mlflow.models.spec import (
    Architecture,
    ModelSpec,
    Network,
    architecture_names,
    architectures,
    build_model,
    get_architecture,
    load_trained,
    spec_from_options,
)

if TYPE_CHECKING:
    from torch import nn

    from seaice_mlflow.models.deeplab import DeepLabV3
    from seaice_mlflow.models.unet import UNet

#: Network classes exported here, imported on first use (they import torch; the registry does not).
_NETWORKS = {"UNet": "seaice_mlflow.models.unet", "DeepLabV3": "seaice_mlflow.models.deeplab"}


def __getattr__(name: str) -> Any:
    if name in _NETWORKS:
        from importlib import import_module

        return getattr(import_module(_NETWORKS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def init_output_bias(model: nn.Module, head: str, value: float) -> None:
    """Start ``head``'s output at ``value`` everywhere: the bias of its last convolution (every
    network ends each head in one, see :class:`Network`). For a regression head, the training data's mean."""
    import torch
    from torch import nn

    last = [m for m in model.heads[head].modules() if isinstance(m, nn.Conv2d)][-1]
    if last.bias is None:
        raise ValueError(f"the {head} head's last convolution has no bias")
    with torch.no_grad():
        last.bias.fill_(value)


__all__ = [
    "Architecture",
    "DeepLabOptions",
    "DeepLabV3",
    "ModelSpec",
    "ModelSpecError",
    "Network",
    "UNet",
    "UNetOptions",
    "architecture_names",
    "architectures",
    "build_model",
    "get_architecture",
    "init_output_bias",
    "load_trained",
    "spec_from_options",
]
