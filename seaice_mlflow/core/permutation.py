"""Permutation importance: the drop of a head's official score when a feature is shuffled.

Model-agnostic, the cross-check of the gradient methods (:mod:`~seaice_mlflow.core.attribution`):
a feature's values are shuffled together across all sampled pixels, the patches predicted again
and each head's official score (and each class's F1) recomputed on them, pooled; the importance
is the drop in points, its spread over ``settings.repeats`` shuffles. Every head is decoded from
one forward pass per perturbation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from seaice_mlflow.core.attribution import (
    ALL,
    Baseline,
    Feature,
    Importance,
    Patches,
    Settings,
    baselines,
    by_level,
    summarise,
)
from seaice_mlflow.core.metrics import ClassCounts, confusion_matrix, head_score, percent
from seaice_mlflow.core.task import Head, TaskSpec


def predict_classes(
    network: nn.Module, heads: Sequence[Head], inputs: torch.Tensor, batch: int
) -> dict[str, torch.Tensor]:
    """Decoded class maps (N, P, P) of ``heads`` from one pass: argmax, or the rounded, clamped value."""
    out: dict[str, list[torch.Tensor]] = {h.name: [] for h in heads}
    with torch.no_grad():
        for start in range(0, len(inputs), batch):
            scores = network(inputs[start : start + batch])
            for head in heads:
                values = scores[head.name]
                if head.kind == "regression":
                    out[head.name].append(values[:, 0].round().clamp(0, head.n_classes - 1).long())
                else:
                    out[head.name].append(values.argmax(dim=1))
    return {name: torch.cat(parts) for name, parts in out.items()}


def head_scores(head: Head, reference: torch.Tensor, prediction: torch.Tensor, ignore_index: int) -> np.ndarray:
    """The head's official score and each class's F1, in percent, pooled over the patches."""
    cm = confusion_matrix(reference.cpu().numpy(), prediction.cpu().numpy().astype(np.uint8), ignore_index)
    per_class = ClassCounts.from_confusion(cm[: head.n_classes, : head.n_classes]).f1()
    return np.array([head_score(head.score_metric, cm), *(percent(v) for v in per_class)])


def perturbed_scores(
    network: nn.Module, task: TaskSpec, patches: Patches, heads: Sequence[str],
    perturb: Callable[[torch.Tensor], torch.Tensor], batch: int = 16,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Each head's official score and per-class F1 on the patches after ``perturb(inputs)``."""
    predicted = predict_classes(network, [task.head(n) for n in heads], perturb(patches.inputs), batch)
    return {name: head_scores(task.head(name), patches.references[name], predicted[name], task.ignore_index)
            for name in heads}  # fmt: skip


def shuffled(channels: Sequence[int], generator: torch.Generator) -> Callable[[torch.Tensor], torch.Tensor]:
    """A perturbation that shuffles ``channels`` together across all pixels of all patches."""

    def perturb(inputs: torch.Tensor) -> torch.Tensor:
        out = inputs.clone()
        n, _, h, w = inputs.shape
        order = torch.randperm(n * h * w, generator=generator).to(inputs.device)
        values = inputs[:, list(channels)].permute(1, 0, 2, 3).reshape(len(channels), -1)[:, order]
        out[:, list(channels)] = values.reshape(len(channels), n, h, w).permute(1, 0, 2, 3)
        return out

    return perturb


def replaced(channels: Sequence[int], kind: Baseline) -> Callable[[torch.Tensor], torch.Tensor]:
    """A perturbation that sets ``channels`` to their baseline (what Feature Ablation does)."""

    def perturb(inputs: torch.Tensor) -> torch.Tensor:
        out = inputs.clone()
        out[:, list(channels)] = baselines(inputs, kind)[:, list(channels)]
        return out

    return perturb


def permutation_table(
    network: nn.Module, task: TaskSpec, patches: Patches, heads: Sequence[str],
    classes: Mapping[str, Sequence[int]], features: Sequence[Feature], settings: Settings,
) -> list[Importance]:  # fmt: skip
    """Score drops (points) when each feature is shuffled: the official score for ``all``, each
    class's F1 for that class; spread over ``settings.repeats`` shuffles."""
    before = perturbed_scores(network, task, patches, heads, lambda x: x, settings.batch)
    generator = torch.Generator().manual_seed(settings.seed)
    drops = {name: np.zeros((settings.repeats, len(features), len(before[name]))) for name in heads}
    for i, feature in enumerate(features):
        for r in range(settings.repeats):
            after = perturbed_scores(network, task, patches, heads, shuffled(feature.channels, generator),
                                     settings.batch)  # fmt: skip
            for name in heads:
                drops[name][r, i] = np.nan_to_num(before[name]) - np.nan_to_num(after[name])
    rows: list[Importance] = []
    for name in heads:
        head, reference = task.head(name), patches.references[name]
        columns = [(ALL, 0, reference != task.ignore_index)]
        columns += [(head.class_names[c], 1 + c, reference == c) for c in classes.get(name, ())]
        for target, column, pixels in columns:
            counted = int(pixels.flatten(1).any(1).sum())
            if not counted:
                continue
            for chosen in by_level(features).values():
                index = [features.index(f) for f in chosen]
                summary = summarise("permutation", name, target, chosen, drops[name][:, index, column])
                rows += [Importance(**{**r.as_dict(), "patches": counted}) for r in summary]
    return rows
