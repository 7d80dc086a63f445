"""Segmentation models: a spec that names one, a registry that builds it, and class maps from outputs.

Every model maps an input (N, C, H, W) of any size to ``{chart: (N, K, H, W)}`` with the keys of
:data:`~seaice_mlflow.charts.CHART_NAMES`, and has an int ``stride``: inputs are zero-padded to a
multiple of it internally, so callers pick tile sizes that are multiples of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from seaice_mlflow.charts import CHART_NAMES, CHARTS
from seaice_mlflow.errors import ParameterError
from seaice_mlflow.models.deeplab import RESNETS, DeepLabV3
from seaice_mlflow.models.unet import UNet

#: How SIC is predicted: one channel regressing the class index (MSE), or an 11-way softmax (CE).
SicHead = Literal["regression", "classification"]
SIC_HEADS: tuple[SicHead, ...] = get_args(SicHead)


class ModelSpecError(ParameterError, ValueError):
    """A model spec names an unknown model, depth or SIC head, or has unusable values."""


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model; stored with checkpoints as JSON (:meth:`as_dict`)."""

    name: str  # a key of MODELS
    in_channels: int
    sic_head: SicHead = "regression"
    unet_filters: tuple[int, ...] = (32, 32, 64, 64)  # MMSeaIce winner; starter pack (16, 32, 64, 64)
    deeplab_depth: int = 152  # torchvision ResNet depth
    pretrained: str | None = None  # local torchvision ResNet state dict (DeepLabV3 backbone only)

    def outputs(self) -> dict[str, int]:
        """Output channels per chart, in CHART_NAMES order."""
        return {
            name: 1 if name == "SIC" and self.sic_head == "regression" else CHARTS[name].n_classes
            for name in CHART_NAMES
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples as lists)."""
        out = asdict(self)
        out["unet_filters"] = list(self.unet_filters)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Inverse of :meth:`as_dict`; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelSpecError("model", f"unknown model spec fields {', '.join(unknown)}; "
                                 f"expected {', '.join(sorted(known))}")
        values = dict(data)
        if "unet_filters" in values:
            values["unet_filters"] = tuple(int(f) for f in values["unet_filters"])
        return cls(**values)


def _build_unet(spec: ModelSpec) -> nn.Module:
    return UNet(spec.in_channels, spec.outputs(), filters=spec.unet_filters)


def _build_deeplabv3(spec: ModelSpec) -> nn.Module:
    return DeepLabV3(spec.in_channels, spec.outputs(), depth=spec.deeplab_depth, pretrained=spec.pretrained)


#: Model builders by name.
MODELS: dict[str, Callable[[ModelSpec], nn.Module]] = {"unet": _build_unet, "deeplabv3": _build_deeplabv3}


def check_spec(spec: ModelSpec) -> None:
    """Raise :class:`ModelSpecError` (a ValueError) naming the choices if ``spec`` cannot be built."""
    if spec.name not in MODELS:
        raise ModelSpecError("model", f"unknown model {spec.name!r}; choose among {', '.join(MODELS)}")
    if spec.sic_head not in SIC_HEADS:
        raise ModelSpecError("sic_head", f"unknown SIC head {spec.sic_head!r}; choose among {', '.join(SIC_HEADS)}")
    if isinstance(spec.in_channels, bool) or not isinstance(spec.in_channels, int) or spec.in_channels < 1:
        raise ModelSpecError("in_channels", f"must be a positive integer, got {spec.in_channels!r}")
    if spec.name == "unet":
        if not spec.unet_filters or any(not isinstance(f, int) or f < 1 for f in spec.unet_filters):
            raise ModelSpecError("unet_filters", f"must be positive integers, got {spec.unet_filters!r}")
        if spec.pretrained:
            raise ModelSpecError("pretrained", "pretrained backbones are only available for deeplabv3")
    if spec.name == "deeplabv3" and spec.deeplab_depth not in RESNETS:
        raise ModelSpecError("deeplab_depth", f"no ResNet of depth {spec.deeplab_depth!r}; "
                             f"choose among {', '.join(map(str, RESNETS))}")


def build_model(spec: ModelSpec) -> nn.Module:
    """The model ``spec`` describes, freshly initialised (or with its pretrained backbone)."""
    check_spec(spec)
    return MODELS[spec.name](spec)


def init_output_bias(model: nn.Module, chart: str, value: float) -> None:
    """Start ``chart``'s output at ``value`` everywhere: the bias of its head's last convolution
    (both models end each head in one). For a regression head, the training data's mean."""
    last = [m for m in model.heads[chart].modules() if isinstance(m, nn.Conv2d)][-1]
    if last.bias is None:
        raise ValueError(f"the {chart} head's last convolution has no bias")
    with torch.no_grad():
        last.bias.fill_(value)


def non_finite_weights(state: Mapping[str, Tensor]) -> list[str]:
    """Names of the floating-point tensors of a state dict holding nan or inf (a diverged model)."""
    return [name for name, value in state.items()
            if torch.is_floating_point(value) and not bool(torch.isfinite(value).all())]


def predicted_classes(outputs: Mapping[str, Tensor], sic_head: SicHead) -> dict[str, Tensor]:
    """Class maps (N, H, W) uint8 from model outputs (N, K, H, W).

    Softmax heads take the argmax; the SIC regression head is rounded and clamped to 0..10.
    """
    if sic_head not in SIC_HEADS:
        raise ModelSpecError("sic_head", f"unknown SIC head {sic_head!r}; choose among {', '.join(SIC_HEADS)}")
    classes = {}
    for chart, out in outputs.items():
        if chart == "SIC" and sic_head == "regression":
            top = CHARTS[chart].n_classes - 1
            classes[chart] = torch.clamp(torch.round(out[:, 0]), 0, top).to(torch.uint8)
        else:
            classes[chart] = out.argmax(dim=1).to(torch.uint8)
    return classes


__all__ = [
    "MODELS", "SIC_HEADS", "SicHead", "DeepLabV3", "ModelSpec", "ModelSpecError", "UNet",
    "build_model", "check_spec", "predicted_classes",
]
