"""Floe detection scores: predicted floes matched one to one to the reference floes of a photo.

A predicted and a reference floe match when their masks overlap with an IoU of at least 0.5
(:data:`MATCH_IOU`); the pairs are chosen to maximise the summed IoU (Hungarian assignment,
``scipy.optimize.linear_sum_assignment``), pixels the reference leaves unlabelled (255, e.g. the
watershed boundaries) counting for neither. Matches, reference and predicted floes are pooled
over the photos: precision = matches / predicted, recall = matches / reference, F1 their harmonic
mean (the combined score the training loop keeps the best epoch by) and the mean IoU of the
matched pairs, in percent. A ratio of nothing is 100 when there was nothing to find and nothing
was found, 0 otherwise; the matched IoU is NaN without a match.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from seaice_mlflow.core.metrics import percent
from seaice_mlflow.tasks.optical.floes.instances import floe_class_indices, floe_instances
from seaice_mlflow.tasks.optical.labels import IGNORE, ClassTable
from seaice_mlflow.tasks.optical.readers import Photo, read_pair

#: Least mask IoU of a predicted and a reference floe that match.
MATCH_IOU = 0.5


@dataclass(frozen=True)
class FloeMatch:
    """The floes of one photo: how many in the reference and the prediction, the IoU of each match."""

    reference: int
    predicted: int
    ious: np.ndarray  # float64 (matches,)

    @property
    def matched(self) -> int:
        return len(self.ious)


def _numbered(instance_map: np.ndarray) -> tuple[np.ndarray, int]:
    """The instances of a map numbered 0 (none), 1..n by ascending id, and n."""
    ids = np.asarray(instance_map).ravel()
    present = np.unique(ids[ids > 0])
    index = np.where(ids > 0, np.searchsorted(present, ids) + 1, 0)
    return index, len(present)


def match_floes(
    reference: np.ndarray, predicted: np.ndarray, ignore: np.ndarray | None = None, threshold: float = MATCH_IOU
) -> FloeMatch:
    """Match the floes of two instance maps of a photo (int, 0 no floe) one to one at mask IoU of
    ``threshold`` or more; ``ignore`` (bool, same shape) marks pixels left out of every mask."""
    if np.shape(reference) != np.shape(predicted):
        raise ValueError(f"the prediction is {np.shape(predicted)}, the reference {np.shape(reference)}")
    ref, n_ref = _numbered(reference)
    pred, n_pred = _numbered(predicted)
    if ignore is not None:
        keep = ~np.asarray(ignore, bool).ravel()
        ref, pred = ref[keep], pred[keep]
    if not n_ref or not n_pred:
        return FloeMatch(n_ref, n_pred, np.zeros(0))
    joint = np.bincount(ref * (n_pred + 1) + pred, minlength=(n_ref + 1) * (n_pred + 1))
    overlap = joint.reshape(n_ref + 1, n_pred + 1).astype(np.float64)
    ref_area, pred_area = overlap.sum(axis=1)[1:], overlap.sum(axis=0)[1:]
    inter = overlap[1:, 1:]
    union = ref_area[:, None] + pred_area[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    rows, cols = linear_sum_assignment(iou, maximize=True)
    matched = iou[rows, cols]
    return FloeMatch(n_ref, n_pred, matched[matched >= threshold])


@dataclass(frozen=True)
class FloeScores:
    """Floe detection scores pooled over photos (module docstring), in percent."""

    matched: int
    reference: int
    predicted: int
    iou_sum: float  # summed IoU of the matches
    photos: int

    @property
    def precision(self) -> float:
        return _ratio(self.matched, self.predicted, self.reference == 0)

    @property
    def recall(self) -> float:
        return _ratio(self.matched, self.reference, self.predicted == 0)

    @property
    def f1(self) -> float:
        return _ratio(2 * self.matched, self.reference + self.predicted, True)

    @property
    def matched_iou(self) -> float:
        return percent(self.iou_sum / self.matched) if self.matched else float("nan")

    @property
    def combined(self) -> float:
        """The score of a model: the F1."""
        return self.f1

    def as_dict(self) -> dict[str, float | int]:
        return {"f1": self.f1, "precision": self.precision, "recall": self.recall, "matched_iou": self.matched_iou,
                "matched": self.matched, "reference": self.reference, "predicted": self.predicted,
                "photos": self.photos}  # fmt: skip

    def metrics(self, prefix: str) -> dict[str, float]:
        """As MLflow metrics: ``<prefix>_floe_f1``, ``_floe_precision``, ``_floe_recall``,
        ``_floe_matched_iou`` and ``<prefix>_combined`` (the F1)."""
        return {f"{prefix}_floe_f1": self.f1, f"{prefix}_floe_precision": self.precision,
                f"{prefix}_floe_recall": self.recall, f"{prefix}_floe_matched_iou": self.matched_iou,
                f"{prefix}_combined": self.combined}  # fmt: skip


def _ratio(part: int, whole: int, nothing_to_find: bool) -> float:
    if whole:
        return percent(part / whole)
    return 100.0 if nothing_to_find else 0.0


@dataclass
class FloeBoard:
    """Accumulates the floe matches of photos; :meth:`pooled` scores them together."""

    photos: dict[str, FloeMatch] = field(default_factory=dict)

    def add(
        self, photo: str, reference: np.ndarray, predicted: np.ndarray, ignore: np.ndarray | None = None
    ) -> FloeMatch:
        """Match one photo's floes (:func:`match_floes`) and keep the result under its name."""
        self.photos[photo] = match = match_floes(reference, predicted, ignore)
        return match

    def pooled(self) -> FloeScores:
        matches = list(self.photos.values())
        return FloeScores(
            matched=sum(m.matched for m in matches),
            reference=sum(m.reference for m in matches),
            predicted=sum(m.predicted for m in matches),
            iou_sum=float(sum(m.ious.sum() for m in matches)),
            photos=len(matches),
        )


def score_floe_photos(
    photos: Sequence[Photo],
    table: ClassTable,
    floe_classes: Sequence[str],
    min_pixels: int,
    detect: Callable[[np.ndarray], np.ndarray],
) -> FloeBoard:
    """The floe matches of labelled photos: reference floes from each label (the regions of
    ``floe_classes`` of ``min_pixels`` or more), predicted ones by ``detect(rgb)`` (an instance map)."""
    indices = floe_class_indices(table, floe_classes)
    board = FloeBoard()
    for photo in photos:
        rgb, label = read_pair(photo, table)
        board.add(photo.stem, floe_instances(label, indices, min_pixels), detect(rgb), ignore=label == IGNORE)
    return board
