"""Floe instances: from the semantic labels of a photo (references, training targets) and from detections.

No data set labels floes one by one, so the instances are the connected regions of the floe
classes in a class map (4-connectivity): PixelAnnotationTool's watershed masks draw 255 between
touching regions, so floes that touch separate there, and specks under ``min_pixels`` are left
out. An instance map is int32 (H, W): 0 where there is no floe, floe ``k`` numbered 1..n.
Detections (a box's mask at the photo's pixels and a score each) become an instance map with the
better detection keeping a pixel that two claim.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.tasks.optical.labels import ClassTable

#: 4-connectivity: pixels touching only at a corner belong to different floes.
FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)
#: A pixel is a detection's when its mask probability reaches this.
MASK_THRESHOLD = 0.5
#: Detections of this score or more are floes.
SCORE_THRESHOLD = 0.5

Window = tuple[slice, slice]


def floe_class_indices(table: ClassTable, names: str | Sequence[str]) -> tuple[int, ...]:
    """The class indices of the floe classes ``names`` (a list, or names separated by commas;
    compared case-insensitively), with an error naming ``--floe-classes`` and the table's names."""
    wanted = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    if not wanted:
        raise ParameterError("floe_classes", f"names no class; give class names of the table, among "
                             f"{', '.join(table.names)}")  # fmt: skip
    lower = {name.lower(): index for index, name in enumerate(table.names)}
    unknown = [n for n in wanted if n.lower() not in lower]
    if unknown:
        raise ParameterError("floe_classes", f"{', '.join(map(repr, unknown))} not in the class table "
                             f"({table.describe()}); its classes are {', '.join(table.names)}")  # fmt: skip
    return tuple(sorted({lower[n.lower()] for n in wanted}))


def compact_instances(instance_map: np.ndarray, min_pixels: int = 1) -> np.ndarray:
    """The instances of ``instance_map`` (any ids, 0 none) with at least ``min_pixels`` pixels,
    renumbered 1..n in the order of their ids; int32."""
    ids = np.asarray(instance_map)
    present, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    kept = (present != 0) & (counts >= min_pixels)
    lookup = np.zeros(len(present), np.int32)
    lookup[kept] = np.arange(1, int(kept.sum()) + 1, dtype=np.int32)
    return lookup[inverse].reshape(ids.shape)


def floe_instances(classes: np.ndarray, floe_indices: Sequence[int], min_pixels: int = 1) -> np.ndarray:
    """The floes of a class map (H, W) uint8 (255: ignore, watershed boundaries): connected regions
    (4-connectivity) of the classes ``floe_indices`` of at least ``min_pixels`` pixels; int32
    (H, W), 0 for no floe, floes numbered 1..n in raster order."""
    floe = np.isin(np.asarray(classes), np.asarray(floe_indices, np.int64))
    regions, n = ndimage.label(floe, structure=FOUR_CONNECTED, output=np.int32)
    kept = np.bincount(regions.ravel(), minlength=n + 1) >= min_pixels
    kept[0] = False
    lookup = np.zeros(n + 1, np.int32)
    lookup[kept] = np.arange(1, int(kept.sum()) + 1, dtype=np.int32)
    return lookup[regions]


def instance_targets(instance_map: np.ndarray) -> dict[str, np.ndarray]:
    """The Mask R-CNN targets of an instance map with ids 1..n (:func:`compact_instances`):
    ``boxes`` float32 (n, 4) xyxy around each floe's pixels (right and lower edges exclusive, so
    a one-pixel floe has a box of one pixel), ``labels`` int64 (n,) all 1 (a floe) and ``masks``
    uint8 (n, H, W); n may be 0."""
    ids = np.asarray(instance_map)
    n = int(ids.max()) if ids.size else 0
    boxes = np.zeros((n, 4), np.float32)
    for k, window in enumerate(ndimage.find_objects(ids, max_label=n)):
        if window is None:
            raise ValueError(f"instance {k + 1} of {n} has no pixel: number the instances 1..n (compact_instances)")
        rows, cols = window
        boxes[k] = (cols.start, rows.start, cols.stop, rows.stop)
    masks = (ids[None] == np.arange(1, n + 1, dtype=ids.dtype)[:, None, None]).astype(np.uint8)
    return {"boxes": boxes, "labels": np.ones(n, np.int64), "masks": masks}


def detected_instances(
    detections: Sequence[tuple[Window, np.ndarray]],
    scores: Sequence[float],
    shape: tuple[int, int],
    score_threshold: float = SCORE_THRESHOLD,
    min_pixels: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """An instance map (H, W) int32 of detections, each the window of the photo its mask covers
    and that mask (bool), with their scores: those of ``score_threshold`` or more, best first, a
    pixel going to the best detection that claims it; floes left with fewer than ``min_pixels``
    pixels are dropped. Returns the map (floes 1..n, best first) and the n scores (float32)."""
    if len(detections) != len(scores):
        raise ValueError(f"{len(detections)} detections with {len(scores)} scores")
    instance_map = np.zeros(shape, np.int32)
    order = [k for k in np.argsort(-np.asarray(scores, np.float64), kind="stable") if scores[k] >= score_threshold]
    for number, k in enumerate(order, start=1):
        window, mask = detections[k]
        free = instance_map[window] == 0
        instance_map[window][free & mask] = number
    counts = np.bincount(instance_map.ravel(), minlength=len(order) + 1)[1:]
    kept = np.flatnonzero(counts >= max(min_pixels, 1))
    lookup = np.zeros(len(order) + 1, np.int32)
    lookup[kept + 1] = np.arange(1, len(kept) + 1, dtype=np.int32)
    kept_scores = np.asarray([scores[order[k]] for k in kept], np.float32)
    return lookup[instance_map], kept_scores
