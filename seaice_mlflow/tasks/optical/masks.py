"""Predicted photo masks: writing them as PixelAnnotationTool does, class fractions, scores.

Written per photo, so that an annotator can open a prediction in the tool and correct it:
``<stem>_mask.png`` (R=G=B=label id, the data set's own ids) and ``<stem>_color_mask.png`` (the
class colours of the table); ``class_fractions.json`` gives each photo's share of every class.
Scores pool one confusion matrix over the photos' labelled pixels (255 ignored): per-class IoU and
F1, mIoU over the classes present in the reference or the prediction (scikit-learn's macro
Jaccard), the same without the sky and background classes, and pixel accuracy, in percent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from seaice_mlflow.core.io import atomic_path
from seaice_mlflow.core.metrics import ClassCounts, confusion_matrix, head_metrics, percent
from seaice_mlflow.tasks.optical.crops import HEAD
from seaice_mlflow.tasks.optical.labels import IGNORE, ClassTable, metric_key

#: Classes left out of "mIoU without background" (compared case-insensitively).
BACKGROUND = ("sky", "background")


def write_masks(ids: np.ndarray, table: ClassTable, out: Path, stem: str) -> list[Path]:
    """``<stem>_mask.png`` (R=G=B=id) and ``<stem>_color_mask.png`` in ``out``, each complete or absent."""
    colours = table.colour_lookup()
    written = []
    for name, pixels in ((f"{stem}_mask.png", np.repeat(ids[..., None], 3, axis=-1)),
                         (f"{stem}_color_mask.png", colours[ids])):  # fmt: skip
        with atomic_path(out / name) as tmp:
            Image.fromarray(pixels).save(tmp, format="PNG")
        written.append(out / name)
    return written


def class_fractions(ids: np.ndarray, table: ClassTable) -> dict[str, float]:
    """Each class's share of the photo's pixels, in percent."""
    counts = np.bincount(ids.ravel(), minlength=256)
    return {c.name: percent(counts[c.id] / ids.size) for c in table.classes}


def write_fractions(fractions: dict[str, dict[str, float]], path: Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(fractions, indent=1))
    return path


@dataclass(frozen=True)
class PhotoScores:
    """The pooled scores of a set of photos (module docstring), in percent."""

    miou: float
    miou_without_background: float
    pixel_accuracy: float
    per_class: dict[str, dict[str, float | int]]
    photos: int
    confusion: np.ndarray  # (K, K) class indices, reference rows

    def as_dict(self) -> dict[str, object]:
        return {"miou": self.miou, "miou_without_background": self.miou_without_background,
                "pixel_accuracy": self.pixel_accuracy, "per_class": self.per_class, "photos": self.photos}  # fmt: skip

    def metrics(self, prefix: str = "test") -> dict[str, float]:
        """As MLflow metrics: ``test_miou``, ``test_miou_without_background``, ``test_pixel_accuracy``,
        ``test_iou_<class>`` and ``test_f1_<class>`` (class names as :func:`~.labels.metric_key` writes them)."""
        out = {f"{prefix}_miou": self.miou, f"{prefix}_miou_without_background": self.miou_without_background,
               f"{prefix}_pixel_accuracy": self.pixel_accuracy}  # fmt: skip
        for name, values in self.per_class.items():
            key = metric_key(name)
            out[f"{prefix}_iou_{key}"], out[f"{prefix}_f1_{key}"] = values["iou"], values["f1"]
        return out


def score_photos(pairs: Sequence[tuple[np.ndarray, np.ndarray]], table: ClassTable) -> PhotoScores:
    """Pooled scores of (reference class indices, predicted class indices) pairs, 255 ignored."""
    cm = sum(confusion_matrix(ref, pred, IGNORE) for ref, pred in pairs)
    head = table.to_task().head(HEAD)
    metrics = head_metrics(head, cm)
    k = head.n_classes
    counts = ClassCounts.from_confusion(cm[:k, :k])
    iou = counts.iou()
    kept = [i for i, name in enumerate(head.class_names) if name.lower() not in BACKGROUND and counts.present[i]]
    without = percent(float(np.mean(iou[kept]))) if kept else float("nan")
    per_class = {name: {"iou": metrics.per_class[name].iou, "f1": metrics.per_class[name].f1,
                        "pixels": metrics.per_class[name].pixels} for name in head.class_names}  # fmt: skip
    return PhotoScores(metrics.mean_iou, without, metrics.accuracy, per_class, len(pairs), cm[:k, :k])
