"""Floe sizes of a photo: each floe's area and equivalent diameter, and the photo's floe-size distribution.

A floe's area is its number of pixels and its equivalent diameter that of the disc of the same
area, ``2 sqrt(area / pi)``. The distribution counts the floes and their share of the floe area
over fixed, log-spaced diameter bins (:data:`DIAMETER_EDGES`, half octaves from 1 to 8192 px), so
the distributions of photos compare bin by bin; with it go the number of floes and the share of
the photo the floes cover.

Sizes are in photo pixels: a close-range photo sees the surface in perspective, a pixel near the
horizon covering far more ice than one at the bottom, so there is no metric scale without the
camera's geometry (height, tilt, focal length), and sizes compare within a camera's view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from seaice_mlflow.core.metrics import percent

#: Edges of the diameter bins in pixels: 2^(k/2) for k = 0..26 (1 to 8192 px, half octaves).
DIAMETER_EDGES: tuple[float, ...] = tuple(2.0 ** (k / 2) for k in range(27))


def equivalent_diameter(area: np.ndarray | float) -> np.ndarray:
    """The diameter of the disc of ``area`` (both in pixels): ``2 sqrt(area / pi)``."""
    return 2.0 * np.sqrt(np.asarray(area, np.float64) / math.pi)


@dataclass(frozen=True)
class FloeSizes:
    """The floes of an instance map: their ids, areas (px) and equivalent diameters (px), and the
    photo's size in pixels."""

    ids: np.ndarray  # int32 (n,)
    area_px: np.ndarray  # int64 (n,)
    diameter_px: np.ndarray  # float64 (n,)
    photo_pixels: int

    @classmethod
    def of(cls, instance_map: np.ndarray) -> FloeSizes:
        """The sizes of the floes of an instance map (int, 0 no floe), in ascending id order."""
        ids = np.asarray(instance_map)
        counts = np.bincount(ids.ravel(), minlength=1)
        present = np.flatnonzero(counts[1:]) + 1
        area = counts[present].astype(np.int64)
        return cls(present.astype(np.int32), area, equivalent_diameter(area), int(ids.size))

    def __len__(self) -> int:
        return len(self.ids)

    def distribution(self) -> FloeSizeDistribution:
        """The floe-size distribution over :data:`DIAMETER_EDGES`."""
        edges = np.asarray(DIAMETER_EDGES)
        # a floe on an edge goes to the bin above it; beyond the last edge, to the last bin
        bins = np.clip(np.searchsorted(edges, self.diameter_px, side="right") - 1, 0, len(edges) - 2)
        counts = np.bincount(bins, minlength=len(edges) - 1)
        areas = np.bincount(bins, weights=self.area_px.astype(np.float64), minlength=len(edges) - 1)
        total = float(self.area_px.sum())
        shares = tuple(percent(a / total) for a in areas) if total else (0.0,) * len(counts)
        return FloeSizeDistribution(
            floes=len(self),
            floe_area_share=percent(total / self.photo_pixels) if self.photo_pixels else 0.0,
            median_diameter_px=float(np.median(self.diameter_px)) if len(self) else float("nan"),
            counts=tuple(int(c) for c in counts),
            area_shares=shares,
        )


@dataclass(frozen=True)
class FloeSizeDistribution:
    """A photo's floe-size distribution: per diameter bin of :data:`DIAMETER_EDGES` the number of
    floes and their share of the floe area (percent), the number of floes, the share of the photo
    they cover (percent) and their median equivalent diameter (px; NaN without floes)."""

    floes: int
    floe_area_share: float
    median_diameter_px: float
    counts: tuple[int, ...]
    area_shares: tuple[float, ...]

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: the fields and the bin edges (``diameter_edges_px``, one more than the bins)."""
        median = None if math.isnan(self.median_diameter_px) else round(self.median_diameter_px, 3)
        return {"floes": self.floes, "floe_area_share": self.floe_area_share, "median_diameter_px": median,
                "diameter_edges_px": [round(e, 3) for e in DIAMETER_EDGES], "counts": list(self.counts),
                "area_shares": list(self.area_shares)}  # fmt: skip


def size_distribution(instance_map: np.ndarray) -> FloeSizeDistribution:
    """The floe-size distribution of an instance map (:meth:`FloeSizes.distribution`)."""
    return FloeSizes.of(instance_map).distribution()
