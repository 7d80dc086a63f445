"""Floe products of photos: each photo's instance map as a 16-bit PNG, and the floe sizes of all photos.

Per photo ``<stem>_floes.png``: a 16-bit grey PNG whose pixel values are the floe ids (0: no
floe), which any image library reads back unchanged. For a set of photos ``floe_sizes.json``
(per photo its floe-size distribution, :mod:`~seaice_mlflow.tasks.optical.floes.sizes`) and
``floe_sizes.csv`` (one row per floe: photo, floe id, area and equivalent diameter in pixels,
the detection's score). Every file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from seaice_mlflow.core.errors import SeaIceError
from seaice_mlflow.core.io import atomic_path, write_csv
from seaice_mlflow.tasks.optical.floes.sizes import FloeSizeDistribution, FloeSizes

#: File names of the products.
FLOES_SUFFIX = "_floes.png"
SIZES_JSON = "floe_sizes.json"
SIZES_CSV = "floe_sizes.csv"
CSV_COLUMNS = ("photo", "floe", "area_px", "diameter_px", "score")
#: The most floes a 16-bit instance PNG holds.
MAX_FLOES = 2**16 - 1


@dataclass(frozen=True)
class FloeRecord:
    """One photo's floes as written: the photo's name, its instance PNG, sizes and scores (floe
    ``k`` at ``k - 1``; None when the instances are not detections)."""

    photo: str
    path: Path
    sizes: FloeSizes
    scores: np.ndarray | None = None

    @property
    def distribution(self) -> FloeSizeDistribution:
        return self.sizes.distribution()

    def rows(self) -> list[dict[str, object]]:
        """The photo's rows of ``floe_sizes.csv`` (the score left empty without scores)."""
        scores = self.scores if self.scores is not None else np.zeros(0)
        return [dict(zip(CSV_COLUMNS, (self.photo, int(i), int(a), round(float(d), 3),
                                       round(float(scores[i - 1]), 4) if i <= len(scores) else float("nan"))))
                for i, a, d in zip(self.sizes.ids, self.sizes.area_px, self.sizes.diameter_px)]  # fmt: skip


def write_floes(
    instance_map: np.ndarray, out: str | Path, stem: str, scores: np.ndarray | None = None, photo: str = ""
) -> FloeRecord:
    """``<stem>_floes.png`` in ``out`` (complete or absent) and the photo's size record, named
    ``photo`` (default: ``stem``); ``scores`` are the detections' (floe ``k`` at ``k - 1``)."""
    ids = np.asarray(instance_map)
    if ids.ndim != 2:
        raise ValueError(f"an instance map is (H, W), got an array of shape {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() > MAX_FLOES):
        raise SeaIceError(f"{stem}: floe ids {ids.min()}..{ids.max()} do not fit a 16-bit PNG (0..{MAX_FLOES})")
    path = Path(out) / f"{stem}{FLOES_SUFFIX}"
    with atomic_path(path) as tmp:
        Image.fromarray(ids.astype(np.uint16)).save(tmp, format="PNG")
    return FloeRecord(photo or stem, path, FloeSizes.of(ids), None if scores is None else np.asarray(scores))


def read_floes(path: str | Path) -> np.ndarray:
    """An instance map written by :func:`write_floes`, int32 (H, W)."""
    with Image.open(path) as image:
        return np.asarray(image).astype(np.int32)


def write_floe_sizes(records: Sequence[FloeRecord], out: str | Path) -> list[Path]:
    """``floe_sizes.json`` (photo -> its distribution) and ``floe_sizes.csv`` (one row per floe) in ``out``."""
    out = Path(out)
    distributions = {r.photo: r.distribution.as_dict() for r in records}
    with atomic_path(out / SIZES_JSON) as tmp:
        tmp.write_text(json.dumps(distributions, indent=1))
    rows = [row for r in records for row in r.rows()]
    if rows:
        return [out / SIZES_JSON, write_csv(rows, out / SIZES_CSV)]
    with atomic_path(out / SIZES_CSV) as tmp:  # photos without floes: the header alone
        tmp.write_text(",".join(CSV_COLUMNS) + "\n")
    return [out / SIZES_JSON, out / SIZES_CSV]
