"""Masked multi-task loss: MSE or cross entropy for SIC, cross entropy (optionally focal) for SOD and FLOE.

Pixels equal to IGNORE_INDEX take no part. Every chart's loss is a (class-weighted) mean over its
valid pixels; a chart without any valid pixel in the batch contributes an exact, differentiable
zero. No step synchronises with the GPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seaice_mlflow.charts import CHART_NAMES, CHARTS, IGNORE_INDEX
from seaice_mlflow.models import SIC_HEADS, SicHead

#: Task weights of MMSeaIce (the AutoICE winner).
DEFAULT_TASK_WEIGHTS: Mapping[str, float] = MappingProxyType({"SIC": 1.0, "SOD": 3.0, "FLOE": 3.0})


def _check_charts(values: Mapping[str, object], what: str) -> None:
    unknown = sorted(set(values) - set(CHART_NAMES))
    if unknown:
        raise ValueError(f"{what}: unknown charts {', '.join(unknown)}; expected {', '.join(CHART_NAMES)}")


class MultiTaskLoss(nn.Module):
    """Weighted sum of the per-chart losses.

    Args:
        sic_head: "regression" (MSE between ``outputs["SIC"][:, 0]`` and the class index) or
            "classification" (cross entropy like SOD and FLOE).
        task_weights: weight per chart; charts not given keep :data:`DEFAULT_TASK_WEIGHTS`.
        class_weights: optional per-class weights (length ``n_classes``) per chart; each valid
            pixel counts with its class's weight (for the SIC regression head too: a weighted MSE).
        focal_gamma: focusing parameter of the focal loss for the softmax heads; 0 is cross entropy.
    """

    def __init__(self, sic_head: SicHead, task_weights: Mapping[str, float] | None = None,
                 class_weights: Mapping[str, Tensor | Sequence[float] | None] | None = None,
                 focal_gamma: float = 0.0):
        super().__init__()
        if sic_head not in SIC_HEADS:
            raise ValueError(f"unknown SIC head {sic_head!r}; choose among {', '.join(SIC_HEADS)}")
        if focal_gamma < 0:
            raise ValueError(f"focal_gamma must be >= 0, got {focal_gamma}")
        _check_charts(task_weights or {}, "task_weights")
        _check_charts(class_weights or {}, "class_weights")
        self.sic_head = sic_head
        self.focal_gamma = float(focal_gamma)
        self.task_weights = {**DEFAULT_TASK_WEIGHTS, **(task_weights or {})}
        self.weighted_charts: tuple[str, ...] = ()
        for chart, weights in (class_weights or {}).items():
            if weights is None:
                continue
            weights = torch.as_tensor(weights, dtype=torch.float32)
            if weights.shape != (CHARTS[chart].n_classes,):
                raise ValueError(f"class_weights[{chart!r}] must have {CHARTS[chart].n_classes} values, "
                                 f"got shape {tuple(weights.shape)}")
            self.register_buffer(f"class_weights_{chart}", weights)  # follows .to(device)
            self.weighted_charts += (chart,)

    def forward(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """(weighted total, {chart: unweighted loss, detached}) of outputs (N, K, H, W) and targets (N, H, W)."""
        total, parts = None, {}
        for chart in CHART_NAMES:
            out, target = outputs[chart], targets[chart]
            if out.dim() != 4 or target.shape != (out.shape[0], *out.shape[2:]):
                raise ValueError(f"{chart}: outputs {tuple(out.shape)} and targets {tuple(target.shape)} "
                                 "do not match (expected (N, K, H, W) and (N, H, W))")
            loss = self.chart_loss(chart, out, target)
            parts[chart] = loss.detach()
            weighted = self.task_weights[chart] * loss
            total = weighted if total is None else total + weighted
        return total, parts

    def chart_loss(self, chart: str, out: Tensor, target: Tensor) -> Tensor:
        """Mean loss of one chart over its valid pixels (weighted by class), 0 without valid pixels."""
        valid = target != IGNORE_INDEX
        index = torch.where(valid, target, 0).long()  # a safe class index under ignored pixels
        if chart == "SIC" and self.sic_head == "regression":
            error = torch.where(valid, out[:, 0].float() - index.float(), 0.0)
            pixel = error.square()
        else:
            pixel = F.cross_entropy(out.float(), target.long(), ignore_index=IGNORE_INDEX, reduction="none")
            if self.focal_gamma > 0:
                # (1 - p)^gamma with its base kept off 0, where the power's derivative is infinite.
                p = torch.exp(-pixel)
                pixel = (1.0 - p).clamp_min(1e-12).pow(self.focal_gamma) * pixel
        weight = valid.float()
        if chart in self.weighted_charts:
            weight = weight * getattr(self, f"class_weights_{chart}")[index]
        # Zero when no pixel counts: then the numerator is an exact (differentiable) zero too.
        norm = weight.sum().clamp_min(torch.finfo(weight.dtype).tiny)
        return (pixel * weight).sum() / norm


def class_weights_from_histograms(histograms: Mapping[str, Sequence[int]], power: float = 0.5) -> dict[str, Tensor]:
    """Inverse-frequency^power class weights per chart, mean 1 over the classes present, 0 for absent ones.

    ``histograms[chart]`` holds the class counts followed by the masked (255) count, as in the
    training store manifest.
    """
    _check_charts(histograms, "histograms")
    weights = {}
    for chart, counts in histograms.items():
        n = CHARTS[chart].n_classes
        if len(counts) != n + 1:
            raise ValueError(f"histograms[{chart!r}] must hold {n} class counts and the masked count, "
                             f"got {len(counts)} values")
        counts = torch.as_tensor(list(counts[:n]), dtype=torch.float64)
        present = counts > 0
        if not present.any():
            raise ValueError(f"histograms[{chart!r}] has no valid pixel; cannot weight its classes")
        frequency = counts / counts.sum()
        w = torch.where(present, frequency.clamp_min(1e-300) ** -power, 0.0)
        weights[chart] = (w / w[present].mean()).float()
    return weights
