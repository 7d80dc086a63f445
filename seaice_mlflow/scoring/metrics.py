"""The official AutoICE score (spec section 5), pooled over scenes and per scene.

Per chart, reference pixels equal to 255 are dropped; SIC is scored with R2 on class indices and
SOD/FLOE with F1 weighted by reference support (sklearn ``r2_score`` and
``f1_score(average='weighted')``), each x100 and rounded to 3 decimals; the combined score is the
2/2/1 weighted mean of the rounded scores, rounded to 3 decimals.

Scores are computed from 256 x 256 confusion matrices, which are exact (integer counts), cheap to
pool over hundreds of full scenes, and give the same numbers as the starter pack's
``compute_metrics`` on the flattened pixels (tested against sklearn).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from seaice_mlflow.charts import CHART_NAMES, CHARTS, IGNORE_INDEX

N_VALUES = 256


def confusion_matrix(reference: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Counts (256, 256) int64 of (reference, prediction) pairs where the reference is not 255."""
    reference = np.asarray(reference).ravel()
    prediction = np.asarray(prediction).ravel()
    valid = reference != IGNORE_INDEX
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


def chart_score(chart: str, cm: np.ndarray) -> float:
    """Official score of one chart in percent, rounded to 3 decimals (NaN without valid pixels)."""
    value = METRICS[CHARTS[chart].metric](cm)
    return float(np.round(value * 100, 3))


def combined_score(scores: Mapping[str, float]) -> float:
    """2/2/1 weighted mean of the (rounded) chart scores, rounded to 3 decimals."""
    weights = {c: CHARTS[c].weight for c in CHART_NAMES}
    total = sum(scores[c] * w for c, w in weights.items())
    return float(np.round(total / sum(weights.values()), 3))


@dataclass
class Scores:
    """Combined and per-chart scores (percent) with the number of scored pixels per chart."""

    combined: float
    charts: dict[str, float]
    pixels: dict[str, int]

    @classmethod
    def from_confusions(cls, confusions: Mapping[str, np.ndarray]) -> Scores:
        charts = {c: chart_score(c, confusions[c]) for c in CHART_NAMES}
        return cls(combined_score(charts), charts, {c: int(confusions[c].sum()) for c in CHART_NAMES})

    def as_dict(self) -> dict[str, float | dict[str, int]]:
        return {"combined": self.combined, **self.charts, "pixels": dict(self.pixels)}

    def metrics(self, prefix: str) -> dict[str, float]:
        """As MLflow metrics: ``<prefix>_SIC_r2``, ``<prefix>_SOD_f1``, ``<prefix>_FLOE_f1``, ``<prefix>_combined``."""
        out = {f"{prefix}_{c}_{CHARTS[c].metric}": self.charts[c] for c in CHART_NAMES}
        out[f"{prefix}_combined"] = self.combined
        return out


@dataclass
class ScoreBoard:
    """Accumulates confusion matrices per scene; scores pooled (official) and per scene."""

    scenes: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def add(self, scene_id: str, reference: Mapping[str, np.ndarray], prediction: Mapping[str, np.ndarray]) -> None:
        """Count one scene; ``reference`` and ``prediction`` map chart names to class maps of one shape."""
        confusions = {}
        for chart in CHART_NAMES:
            ref, pred = np.asarray(reference[chart]), np.asarray(prediction[chart])
            if ref.shape != pred.shape:
                raise ValueError(f"scene {scene_id}, {chart}: prediction is {pred.shape}, reference {ref.shape}")
            confusions[chart] = confusion_matrix(ref, pred)
        self.scenes[scene_id] = confusions

    def confusion(self, chart: str) -> np.ndarray:
        """Pooled confusion matrix of ``chart`` over all scenes."""
        return sum((c[chart] for c in self.scenes.values()), np.zeros((N_VALUES, N_VALUES), np.int64))

    def pooled(self) -> Scores:
        """The official score: all valid pixels of all scenes pooled."""
        return Scores.from_confusions({c: self.confusion(c) for c in CHART_NAMES})

    def per_scene(self) -> dict[str, Scores]:
        return {scene: Scores.from_confusions(conf) for scene, conf in self.scenes.items()}
