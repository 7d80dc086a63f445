"""Scores of class maps against references, pooled over scenes and per scene, for any task.

Per head, reference pixels equal to the task's ignore index are dropped; each head is scored with
its first metric (``Head.metrics``): R2 on class indices or F1 weighted by reference support
(sklearn ``r2_score`` and ``f1_score(average='weighted')``), x100 and rounded to 3 decimals; the
combined score is the mean of the rounded scores weighted by ``Head.weight``, rounded to 3
decimals. For the AutoICE task that is the official score (spec section 5): SIC R2, SOD and
FLOE F1, weights 2/2/1.

Scores are computed from 256 x 256 confusion matrices, which are exact (integer counts), cheap to
pool over hundreds of full scenes, and give the same numbers as the starter pack's
``compute_metrics`` on the flattened pixels (tested against sklearn).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from seaice_mlflow.core.task import TaskSpec

N_VALUES = 256


def confusion_matrix(reference: np.ndarray, prediction: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """Counts (256, 256) int64 of (reference, prediction) pairs where the reference is not ``ignore_index``."""
    reference = np.asarray(reference).ravel()
    prediction = np.asarray(prediction).ravel()
    valid = reference != ignore_index
    pairs = reference[valid].astype(np.int64) * N_VALUES + prediction[valid].astype(np.int64)
    return np.bincount(pairs, minlength=N_VALUES * N_VALUES).reshape(N_VALUES, N_VALUES)


def r2_from_confusion(cm: np.ndarray) -> float:
    """sklearn ``r2_score`` on the pixels counted in ``cm`` (class indices as numbers)."""
    classes = np.arange(N_VALUES, dtype=object)
    n_true = cm.sum(axis=1).astype(object)
    n = int(n_true.sum())
    if n == 0:
        return float("nan")
    residual = int((cm.astype(object) * (classes[:, None] - classes[None, :]) ** 2).sum())
    s1, s2 = int((n_true * classes).sum()), int((n_true * classes**2).sum())
    total = Fraction(n * s2 - s1 * s1, n)  # sum of squared deviations from the mean, exact
    if total == 0:  # sklearn's force_finite: perfect -> 1, else 0
        return 1.0 if residual == 0 else 0.0
    return float(1 - Fraction(residual) / total)


def weighted_f1_from_confusion(cm: np.ndarray) -> float:
    """sklearn ``f1_score(average='weighted')`` on the pixels counted in ``cm``."""
    support = cm.sum(axis=1).astype(np.float64)
    if support.sum() == 0:
        return float("nan")
    predicted = cm.sum(axis=0).astype(np.float64)
    tp = np.diag(cm).astype(np.float64)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(np.average(f1, weights=support))


METRICS = {"r2": r2_from_confusion, "f1": weighted_f1_from_confusion}


def head_score(metric: str, cm: np.ndarray) -> float:
    """A head's score in percent by ``metric``, rounded to 3 decimals (NaN without valid pixels)."""
    return float(np.round(METRICS[metric](cm) * 100, 3))


def combined_score(task: TaskSpec, scores: Mapping[str, float]) -> float:
    """Mean of the (rounded) head scores weighted by ``Head.weight``, rounded to 3 decimals."""
    total = sum(scores[h.name] * h.weight for h in task.heads)
    return float(np.round(total / sum(h.weight for h in task.heads), 3))


@dataclass
class Scores:
    """Combined and per-head scores (percent) with the number of scored pixels per head."""

    task: TaskSpec
    combined: float
    charts: dict[str, float]
    pixels: dict[str, int]

    @classmethod
    def from_confusions(cls, task: TaskSpec, confusions: Mapping[str, np.ndarray]) -> Scores:
        charts = {h.name: head_score(h.score_metric, confusions[h.name]) for h in task.heads}
        pixels = {h.name: int(confusions[h.name].sum()) for h in task.heads}
        return cls(task, combined_score(task, charts), charts, pixels)

    def as_dict(self) -> dict[str, float | dict[str, int]]:
        return {"combined": self.combined, **self.charts, "pixels": dict(self.pixels)}

    def metrics(self, prefix: str) -> dict[str, float]:
        """As MLflow metrics: ``<prefix>_SIC_r2``, ``<prefix>_SOD_f1``, ``<prefix>_FLOE_f1``, ``<prefix>_combined``."""
        out = {f"{prefix}_{h.name}_{h.score_metric}": self.charts[h.name] for h in self.task.heads}
        out[f"{prefix}_combined"] = self.combined
        return out


@dataclass
class ScoreBoard:
    """Accumulates confusion matrices per scene; scores pooled (official) and per scene."""

    task: TaskSpec
    scenes: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def add(self, scene_id: str, reference: Mapping[str, np.ndarray], prediction: Mapping[str, np.ndarray]) -> None:
        """Count one scene; ``reference`` and ``prediction`` map head names to class maps of one shape."""
        confusions = {}
        for chart in self.task.names:
            ref, pred = np.asarray(reference[chart]), np.asarray(prediction[chart])
            if ref.shape != pred.shape:
                raise ValueError(f"scene {scene_id}, {chart}: prediction is {pred.shape}, reference {ref.shape}")
            confusions[chart] = confusion_matrix(ref, pred, self.task.ignore_index)
        self.scenes[scene_id] = confusions

    def confusion(self, chart: str) -> np.ndarray:
        """Pooled confusion matrix of ``chart`` over all scenes."""
        return sum((c[chart] for c in self.scenes.values()), np.zeros((N_VALUES, N_VALUES), np.int64))

    def pooled(self) -> Scores:
        """The official score: all valid pixels of all scenes pooled."""
        return Scores.from_confusions(self.task, {c: self.confusion(c) for c in self.task.names})

    def per_scene(self) -> dict[str, Scores]:
        return {scene: Scores.from_confusions(self.task, conf) for scene, conf in self.scenes.items()}
