"""Permutation importance: the drop of a head's official score when a feature is shuffled.

Model-agnostic, the cross-check of the gradient methods (:mod:`~seaice_mlflow.core.attribution`):
a feature's values are shuffled together across the sampled pixels of a batch (all of them when
they fit one batch), the patches predicted again and each head's official score (and each class's
F1) recomputed on them from confusion matrices pooled over the batches; the importance is the drop
in points, its spread over ``settings.repeats`` shuffles. Every head is decoded from one forward
pass per perturbation; memory holds one batch and a class x class matrix per head, feature and shuffle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

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
from seaice_mlflow.core.metrics import N_VALUES, ClassCounts, confusion_matrix, head_score, percent
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


def head_confusion(head: Head, reference: torch.Tensor, prediction: torch.Tensor, ignore_index: int) -> np.ndarray:
    """The (K, K) confusion matrix of a head's classes over the patches (every counted pair is in it:
    references are classes or ignored, predictions decoded classes)."""
    cm = confusion_matrix(reference.cpu().numpy(), prediction.cpu().numpy().astype(np.uint8), ignore_index)
    return cm[: head.n_classes, : head.n_classes]


def confusion_scores(head: Head, cm: np.ndarray) -> np.ndarray:
    """The head's official score and each class's F1, in percent, from its (K, K) confusion matrix."""
    full = np.zeros((N_VALUES, N_VALUES), np.int64)  # the metrics take every value 0-255
    full[: len(cm), : len(cm)] = cm
    per_class = ClassCounts.from_confusion(cm).f1()
    return np.array([head_score(head.score_metric, full), *(percent(v) for v in per_class)])


def head_scores(head: Head, reference: torch.Tensor, prediction: torch.Tensor, ignore_index: int) -> np.ndarray:
    """The head's official score and each class's F1, in percent, pooled over the patches."""
    return confusion_scores(head, head_confusion(head, reference, prediction, ignore_index))


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


def perturbed_confusions(
    network: nn.Module, task: TaskSpec, patches: Patches, heads: Sequence[str],
    perturb: Callable[[torch.Tensor], torch.Tensor], batch: int = 16,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Each head's (K, K) confusion matrix on the patches after ``perturb(inputs)``."""
    predicted = predict_classes(network, [task.head(n) for n in heads], perturb(patches.inputs), batch)
    return {name: head_confusion(task.head(name), patches.references[name], predicted[name], task.ignore_index)
            for name in heads}  # fmt: skip


def permutation_table(
    network: nn.Module, task: TaskSpec, batches: Iterable[Patches], heads: Sequence[str],
    classes: Mapping[str, Sequence[int]], features: Sequence[Feature], settings: Settings,
) -> list[Importance]:  # fmt: skip
    """Score drops (points) when each feature is shuffled: the official score for ``all``, each
    class's F1 for that class; spread over ``settings.repeats`` shuffles. ``batches`` are read once."""
    generator = torch.Generator().manual_seed(settings.seed)
    sizes = {name: task.head(name).n_classes for name in heads}
    before = {name: np.zeros((k, k), np.int64) for name, k in sizes.items()}
    after = {name: np.zeros((settings.repeats, len(features), k, k), np.int64) for name, k in sizes.items()}
    counted = {name: np.zeros(1 + k, np.int64) for name, k in sizes.items()}  # patches with pixels: all, per class
    for patches in batches:
        for name, cm in perturbed_confusions(network, task, patches, heads, lambda x: x, settings.batch).items():
            before[name] += cm
        for i, feature in enumerate(features):
            for r in range(settings.repeats):
                perturb = shuffled(feature.channels, generator)
                for name, cm in perturbed_confusions(network, task, patches, heads, perturb, settings.batch).items():
                    after[name][r, i] += cm
        for name in heads:
            reference = patches.references[name].flatten(1)
            counted[name][0] += int((reference != task.ignore_index).any(1).sum())
            for c in range(sizes[name]):
                counted[name][1 + c] += int((reference == c).any(1).sum())
    rows: list[Importance] = []
    for name in heads:
        head = task.head(name)
        scores = np.nan_to_num(confusion_scores(head, before[name]))
        drops = np.array([[scores - np.nan_to_num(confusion_scores(head, cm)) for cm in repeat]
                          for repeat in after[name]])  # (repeats, features, 1 + K)  # fmt: skip
        columns = [(ALL, 0), *((head.class_names[c], 1 + c) for c in classes.get(name, ()))]
        for target, column in columns:
            if not counted[name][column]:
                continue
            for chosen in by_level(features).values():
                index = [features.index(f) for f in chosen]
                summary = summarise("permutation", name, target, chosen, drops[:, index, column])
                rows += [Importance(**{**r.as_dict(), "patches": int(counted[name][column])}) for r in summary]
    return rows
