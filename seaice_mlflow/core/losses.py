"""Masked multi-task loss over a task's heads: MSE on the class index for a regression head, cross
entropy (optionally focal) for a classification head.

Pixels equal to the task's ignore index take no part. Every head's loss is a (class-weighted) mean
over its valid pixels; a head without any valid pixel in the batch contributes an exact,
differentiable zero. No step synchronises with the GPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seaice_mlflow.core.task import TaskSpec


class MultiTaskLoss(nn.Module):
    """Weighted sum of the per-head losses.

    Args:
        task: the heads as the model predicts them: a regression head is the MSE between
            ``outputs[head][:, 0]`` and the class index, a classification head cross entropy.
        task_weights: weight per head; heads not given keep their ``Head.loss_weight``.
        class_weights: optional per-class weights (length ``n_classes``) per head; each valid
            pixel counts with its class's weight (for a regression head too: a weighted MSE).
        focal_gamma: focusing parameter of the focal loss for the softmax heads; 0 is cross entropy.
    """

    def __init__(
        self,
        task: TaskSpec,
        task_weights: Mapping[str, float] | None = None,
        class_weights: Mapping[str, Tensor | Sequence[float] | None] | None = None,
        focal_gamma: float = 0.0,
    ):
        super().__init__()
        if focal_gamma < 0:
            raise ValueError(f"focal_gamma must be >= 0, got {focal_gamma}")
        task.check_names(task_weights or {}, "task_weights")
        task.check_names(class_weights or {}, "class_weights")
        self.task = task
        self.regressed = frozenset(h.name for h in task.heads if h.kind == "regression")
        self.focal_gamma = float(focal_gamma)
        self.task_weights = {h.name: h.loss_weight for h in task.heads} | dict(task_weights or {})
        self.weighted_charts: tuple[str, ...] = ()
        for chart, weights in (class_weights or {}).items():
            if weights is None:
                continue
            weights = torch.as_tensor(weights, dtype=torch.float32)
            n_classes = task.head(chart).n_classes
            if weights.shape != (n_classes,):
                raise ValueError(
                    f"class_weights[{chart!r}] must have {n_classes} values, got shape {tuple(weights.shape)}"
                )
            self.register_buffer(f"class_weights_{chart}", weights)  # follows .to(device)
            self.weighted_charts += (chart,)

    def forward(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """(weighted total, {head: unweighted loss, detached}) of outputs (N, K, H, W) and targets (N, H, W)."""
        total, parts = None, {}
        for chart in self.task.names:
            out, target = outputs[chart], targets[chart]
            if out.dim() != 4 or target.shape != (out.shape[0], *out.shape[2:]):
                raise ValueError(
                    f"{chart}: outputs {tuple(out.shape)} and targets {tuple(target.shape)} "
                    "do not match (expected (N, K, H, W) and (N, H, W))"
                )
            loss = self.chart_loss(chart, out, target)
            parts[chart] = loss.detach()
            weighted = self.task_weights[chart] * loss
            total = weighted if total is None else total + weighted
        return total, parts

    def chart_loss(self, chart: str, out: Tensor, target: Tensor) -> Tensor:
        """Mean loss of one head over its valid pixels (weighted by class), 0 without valid pixels."""
        ignore = self.task.ignore_index
        valid = target != ignore
        index = torch.where(valid, target, 0).long()  # a safe class index under ignored pixels
        if chart in self.regressed:
            error = torch.where(valid, out[:, 0].float() - index.float(), 0.0)
            pixel = error.square()
        else:
            pixel = F.cross_entropy(out.float(), target.long(), ignore_index=ignore, reduction="none")
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


def class_weights_from_histograms(
    task: TaskSpec, histograms: Mapping[str, Sequence[int]], power: float = 0.5
) -> dict[str, Tensor]:
    """Inverse-frequency^power class weights per head, mean 1 over the classes present, 0 for absent ones.

    ``histograms[head]`` holds the class counts followed by the masked count, as in the
    training store manifest.
    """
    task.check_names(histograms, "histograms")
    weights = {}
    for chart, counts in histograms.items():
        n = task.head(chart).n_classes
        if len(counts) != n + 1:
            raise ValueError(
                f"histograms[{chart!r}] must hold {n} class counts and the masked count, got {len(counts)} values"
            )
        counts = torch.as_tensor(list(counts[:n]), dtype=torch.float64)
        present = counts > 0
        if not present.any():
            raise ValueError(f"histograms[{chart!r}] has no valid pixel; cannot weight its classes")
        frequency = counts / counts.sum()
        w = torch.where(present, frequency.clamp_min(1e-300) ** -power, 0.0)
        weights[chart] = (w / w[present].mean()).float()
    return weights
