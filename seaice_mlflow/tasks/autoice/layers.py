"""The training store's filter layers of a scene: distance to a chart-polygon border, and land.

A border pixel is inside the chart (some chart has a class) and has a 4-neighbour, inside too,
that differs in any chart (the 255 of an ambiguous SOD/FLOE polygon counts as a class); the ready
files hold no polygon ids, so two touching polygons of identical classes have no border between
them, and the coast and the swath edge, where the charts turn 255, are none either. The layers
are computed once per scene when a store is written (:func:`~seaice_mlflow.tasks.autoice.store.
write_scene`) and read under each patch by the sampler (``--border-distance``, ``--land``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from seaice_mlflow.tasks.autoice.charts import IGNORE_INDEX
from seaice_mlflow.tasks.autoice.files.variables import GLOBAL_MEAN_STD

#: The border layer's value for 255 pixels or more from a border (and with none at all).
FAR = 255
#: Rows of the distance computed at a time (bounds the memory of the squared distances).
STRIP_ROWS = 256


def chart_border(charts: Sequence[np.ndarray]) -> np.ndarray:
    """Pixels on a chart-polygon border (bool, h x w): inside the chart (some chart has a class)
    with a 4-neighbour, inside too, that differs in any chart (see the module docstring)."""
    stack = np.stack(charts)
    inside = (stack != IGNORE_INDEX).any(axis=0)
    border = np.zeros(inside.shape, bool)
    for axis in (0, 1):
        head, tail = (slice(None),) * axis + (slice(1, None),), (slice(None),) * axis + (slice(None, -1),)
        step = (stack[(slice(None), *head)] != stack[(slice(None), *tail)]).any(axis=0) & inside[head] & inside[tail]
        border[head] |= step
        border[tail] |= step
    return border


def border_distance(charts: Sequence[np.ndarray]) -> np.ndarray:
    """Euclidean distance (uint8 pixels, floored, at most :data:`FAR`) from each pixel to the
    nearest :func:`chart_border` pixel; :data:`FAR` everywhere when the charts have no border.

    From scipy's feature transform (the nearest border pixel of each pixel, int32), a strip of
    rows at a time: a third of the time and memory of its float64 distances at 5000 x 5200 px.
    """
    border = chart_border(charts)
    distance = np.full(border.shape, FAR, np.uint8)
    if not border.any():
        return distance
    nearest = ndimage.distance_transform_edt(~border, return_distances=False, return_indices=True)
    floor_sqrt = np.sqrt(np.arange(FAR * FAR + 1)).astype(np.uint8)  # squared distance -> pixels (FAR past it)
    rows, cols = (np.arange(n, dtype=nearest.dtype) for n in border.shape)
    for start in range(0, border.shape[0], STRIP_ROWS):
        strip = slice(start, start + STRIP_ROWS)
        squared = (nearest[0, strip] - rows[strip, None]) ** 2 + (nearest[1, strip] - cols) ** 2
        distance[strip] = floor_sqrt[np.minimum(squared, FAR * FAR)]
    return distance  # floored: distance < N <=> layer < N for whole N


def land_mask(distance_map: np.ndarray) -> np.ndarray:
    """Land pixels (distance-to-land zone 0) of a standard-scaled ``distance_map``."""
    mean, std = GLOBAL_MEAN_STD["distance_map"]
    return np.asarray(distance_map, np.float64) * std + mean < 0.5  # zones are whole numbers
