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

Beyond the score, :func:`head_metrics` gives every metric of a head from the same matrix
(:class:`HeadMetrics`: accuracy, precision / recall / F1 / IoU weighted and macro, per class, and
R2 / RMSE / MAE for a regression head), each equal to scikit-learn on the same pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from typing import Literal, get_args

import numpy as np

from seaice_mlflow.core.task import Head, TaskSpec

N_VALUES = 256

#: What a scoring command reports: the official scores only, or every metric of :func:`head_metrics`.
MetricSet = Literal["official", "all"]
METRIC_SETS: tuple[MetricSet, ...] = get_args(MetricSet)


def confusion_matrix(reference: np.ndarray, prediction: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """Counts (256, 256) int64 of (reference, prediction) pairs where the reference is not ``ignore_index``."""
    reference = np.asarray(reference).ravel()
    prediction = np.asarray(prediction).ravel()
    valid = reference != ignore_index
    pairs = reference[valid].astype(np.int64) * N_VALUES + prediction[valid].astype(np.int64)
    return np.bincount(pairs, minlength=N_VALUES * N_VALUES).reshape(N_VALUES, N_VALUES)


def error_sums(cm: np.ndarray) -> tuple[int, int, int]:
    """Exact integer sums over the pixels counted in ``cm`` (class indices as numbers): pixel
    count, sum of absolute errors and sum of squared errors of prediction against reference."""
    reference, predicted = np.nonzero(cm)
    counts = cm[reference, predicted].astype(object)
    error = (predicted - reference).astype(object)
    return int(counts.sum()), int((counts * abs(error)).sum()), int((counts * error**2).sum())


def r2_from_confusion(cm: np.ndarray) -> float:
    """sklearn ``r2_score`` on the pixels counted in ``cm`` (class indices as numbers)."""
    classes = np.arange(N_VALUES, dtype=object)
    n_true = cm.sum(axis=1).astype(object)
    n, _, residual = error_sums(cm)
    if n == 0:
        return float("nan")
    s1, s2 = int((n_true * classes).sum()), int((n_true * classes**2).sum())
    total = Fraction(n * s2 - s1 * s1, n)  # sum of squared deviations from the mean, exact
    if total == 0:  # sklearn's force_finite: perfect -> 1, else 0
        return 1.0 if residual == 0 else 0.0
    return float(1 - Fraction(residual) / total)


@dataclass(frozen=True)
class ClassCounts:
    """Per value (0-255) of a confusion matrix: true positives, reference and predicted pixels.

    Per-class ratios follow sklearn with ``zero_division=0`` (0 where the denominator is 0);
    weighted averages weigh by reference pixels, macro averages take the values present in the
    reference or the prediction (sklearn's default ``labels``).
    """

    tp: np.ndarray
    reference: np.ndarray
    predicted: np.ndarray

    @classmethod
    def from_confusion(cls, cm: np.ndarray) -> ClassCounts:
        as_float = np.asarray(cm, dtype=np.float64)
        return cls(np.diag(as_float).copy(), as_float.sum(axis=1), as_float.sum(axis=0))

    @property
    def present(self) -> np.ndarray:
        """Mask of the values with reference or predicted pixels."""
        return (self.reference + self.predicted) > 0

    def ratio(self, denominator: np.ndarray, numerator: np.ndarray | None = None) -> np.ndarray:
        """``numerator`` (default: the true positives) over ``denominator``, 0 where it is 0."""
        top = self.tp if numerator is None else numerator
        return np.divide(top, denominator, out=np.zeros_like(top), where=denominator > 0)

    def precision(self) -> np.ndarray:
        return self.ratio(self.predicted)

    def recall(self) -> np.ndarray:
        return self.ratio(self.reference)

    def f1(self) -> np.ndarray:
        return self.ratio(self.reference + self.predicted, 2 * self.tp)

    def iou(self) -> np.ndarray:
        """Jaccard index: true positives over the union of reference and prediction."""
        return self.ratio(self.reference + self.predicted - self.tp)

    def weighted(self, values: np.ndarray) -> float:
        """Mean of per-value ``values`` weighted by reference pixels (NaN without any)."""
        if self.reference.sum() == 0:
            return float("nan")
        return float(np.average(values, weights=self.reference))

    def macro(self, values: np.ndarray) -> float:
        """Unweighted mean of ``values`` over the values present (NaN without any)."""
        present = self.present
        return float(values[present].mean()) if present.any() else float("nan")


def weighted_f1_from_confusion(cm: np.ndarray) -> float:
    """sklearn ``f1_score(average='weighted')`` on the pixels counted in ``cm``."""
    counts = ClassCounts.from_confusion(cm)
    return counts.weighted(counts.f1())


def mean_iou_from_confusion(cm: np.ndarray) -> float:
    """Mean IoU over the classes present in the reference or the prediction (sklearn's macro
    ``jaccard_score`` on the pixels counted in ``cm``): the segmentation community's mIoU."""
    counts = ClassCounts.from_confusion(cm)
    return counts.macro(counts.iou())


METRICS = {"r2": r2_from_confusion, "f1": weighted_f1_from_confusion, "miou": mean_iou_from_confusion}


def percent(value: float) -> float:
    """A ratio as the official scores give it: x100, rounded to 3 decimals."""
    return float(np.round(value * 100, 3))


def head_score(metric: str, cm: np.ndarray) -> float:
    """A head's score in percent by ``metric``, rounded to 3 decimals (NaN without valid pixels)."""
    return percent(METRICS[metric](cm))


@dataclass(frozen=True)
class ClassMetrics:
    """One class of a head: precision, recall, F1 and IoU in percent, and its reference pixels."""

    precision: float
    recall: float
    f1: float
    iou: float
    pixels: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class HeadMetrics:
    """Every metric of one head from its confusion matrix (see :func:`head_metrics`).

    Ratios are in percent (x100, rounded to 3 decimals) like the official scores; ``rmse`` and
    ``mae`` are in class steps (1.0 = one class apart), rounded to 3 decimals, not percent. Unnamed
    precision, recall, F1 and IoU are weighted by reference pixels; ``macro_*`` and ``mean_iou``
    are unweighted means over the classes present (reference or predicted pixels).
    """

    accuracy: float
    precision: float
    recall: float
    f1: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    iou: float
    mean_iou: float
    per_class: dict[str, ClassMetrics]
    r2: float | None = None  # regression heads only
    rmse: float | None = None
    mae: float | None = None

    def scalars(self) -> dict[str, float]:
        """The head-level metrics by name (no per-class values; the regression ones when set)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "per_class"}
        return {name: value for name, value in values.items() if value is not None}

    def as_dict(self) -> dict[str, float | dict[str, dict[str, float | int]]]:
        return {**self.scalars(), "per_class": {name: c.as_dict() for name, c in self.per_class.items()}}


def class_name(head: Head, value: int) -> str:
    """A class value's name; a value outside the head's classes (a spare output) by its number."""
    return head.class_names[value] if value < head.n_classes else str(value)


def regression_metrics(cm: np.ndarray) -> dict[str, float]:
    """R2 in percent (the score), RMSE and MAE in class steps (not percent), rounded to 3 decimals:
    sklearn ``r2_score``, ``sqrt(mean_squared_error)`` and ``mean_absolute_error`` on class indices."""
    n, abs_errors, squared_errors = error_sums(cm)
    if n == 0:
        return {"r2": float("nan"), "rmse": float("nan"), "mae": float("nan")}
    rmse, mae = np.sqrt(squared_errors / n), abs_errors / n
    return {"r2": percent(r2_from_confusion(cm)), "rmse": float(np.round(rmse, 3)), "mae": float(np.round(mae, 3))}


def head_metrics(head: Head, cm: np.ndarray) -> HeadMetrics:
    """Every metric of ``head`` on the pixels counted in ``cm``, each equal to scikit-learn on them.

    Per class: every class of the head, and any other value present; ``pixels`` are reference
    pixels. A regression head (its class index regressed and rounded) adds R2 (its score), RMSE
    and MAE in class steps (:func:`regression_metrics`); its classification metrics are those of
    the rounded classes. Without valid pixels every value is NaN.
    """
    counts = ClassCounts.from_confusion(cm)
    n = int(cm.sum())
    precision, recall, f1, iou = counts.precision(), counts.recall(), counts.f1(), counts.iou()
    values = sorted(set(range(head.n_classes)) | set(np.flatnonzero(counts.present).tolist()))
    per_class = {
        class_name(head, v): ClassMetrics(
            *(percent(m[v]) if n else float("nan") for m in (precision, recall, f1, iou)),
            pixels=int(counts.reference[v]),
        )
        for v in values
    }
    return HeadMetrics(
        accuracy=percent(counts.tp.sum() / n) if n else float("nan"),
        precision=percent(counts.weighted(precision)),
        recall=percent(counts.weighted(recall)),
        f1=percent(counts.weighted(f1)),
        macro_precision=percent(counts.macro(precision)),
        macro_recall=percent(counts.macro(recall)),
        macro_f1=percent(counts.macro(f1)),
        iou=percent(counts.weighted(iou)),
        mean_iou=percent(counts.macro(iou)),
        per_class=per_class,
        **(regression_metrics(cm) if head.kind == "regression" else {}),
    )


@dataclass(frozen=True)
class MetricTable:
    """Every metric of every head of a task (:class:`HeadMetrics` by head name), from the same
    pooled confusion matrices as its official :class:`Scores`."""

    heads: dict[str, HeadMetrics]

    @classmethod
    def from_confusions(cls, task: TaskSpec, confusions: Mapping[str, np.ndarray]) -> MetricTable:
        return cls({h.name: head_metrics(h, confusions[h.name]) for h in task.heads})

    def as_dict(self) -> dict[str, dict]:
        return {name: head.as_dict() for name, head in self.heads.items()}

    def metrics(self, prefix: str) -> dict[str, float]:
        """As MLflow metrics ``<prefix>_<head>_<metric>`` (e.g. ``test_SOD_macro_f1``), no per-class values."""
        return {
            f"{prefix}_{name}_{metric}": value
            for name, head in self.heads.items()
            for metric, value in head.scalars().items()
        }


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

    def confusions(self) -> dict[str, np.ndarray]:
        """Pooled confusion matrices of every head."""
        return {c: self.confusion(c) for c in self.task.names}

    def pooled(self) -> Scores:
        """The official score: all valid pixels of all scenes pooled."""
        return Scores.from_confusions(self.task, self.confusions())

    def metric_table(self) -> MetricTable:
        """Every metric of every head, all valid pixels of all scenes pooled."""
        return MetricTable.from_confusions(self.task, self.confusions())

    def per_scene(self) -> dict[str, Scores]:
        return {scene: Scores.from_confusions(self.task, conf) for scene, conf in self.scenes.items()}
