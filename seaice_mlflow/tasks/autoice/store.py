"""The chunked training store: one chunked netCDF-4 (HDF5) file per scene plus a manifest.

Layout of ``STORE/``::

    manifest.json          schema version, parameters, scenes (split, shapes, class histograms,
                           source checksums), failures; its content fields define the store's
                           digest (:func:`content_digest`)
    normalisation.json     the mean/std table the inputs are scaled with
    scenes/<scene>.nc      sar      (n_sar, h, w) int16 packed z-scores (scale 0.002), 256 x 256 chunks
                           coarse   (n_coarse, ch, cw) float32  AMSR2/ERA5, still on the 2 km grid
                           charts   (3, h, w) uint8  SIC, SOD, FLOE (255 = masked), zlib
                           valid    (h, w) uint8  SAR data present
                           latitude, longitude (21, 21) float64 tie points
                           class_points (24, n, 2) int32  sample pixels of each class (balanced sampling)
                           coverage (h/32, w/32) uint8  valid SIC fraction per block x 255 (patch rejection)
                           border   (h, w) uint8  distance to the nearest chart-polygon border in 80 m
                                    pixels (floored, 255 = 255 or more), zlib (``--border-distance``)
                           land     (h, w) uint8  1 where an 80 m pixel of the block is land, zlib (``--land``)
                           attribute ``record``: the scene's manifest entry (JSON)

Why netCDF-4 and not zarr: reading a 256 x 256 window took 3-4 ms per array with zarr-python 3
(its per-call async overhead) against 0.4-0.6 ms with netCDF4/HDF5 on the same chunks; the
patch sampler reads three arrays per patch. SAR is stored uncompressed (speckle does not
compress; decompression would cost more than the read), charts compressed (they compress ~50x).
The int16 packing keeps 0.001 z (about 0.01 dB) and the range +-65 z.

The training filters' layers (``border``, ``land``; listed in the record's ``layers``;
:mod:`.layers`) are computed once per scene, not per patch: a scene's Euclidean distance transform
costs 1-1.6 s at 5000 x 5200 px, and reading the layer under a patch (about 0.1-0.3 ms) costs much
less than a per-patch transform with its margin (1.3-2 ms; the loader benchmark's patches take ~3
ms).

A chart-polygon border is where two neighbouring (4-connected) pixels that both lie inside the
chart (some chart has a class) differ in any chart, 255 of an ambiguous SOD/FLOE polygon included.
The ready files carry no polygon ids, so two touching polygons with the same classes have no
border between them, and the coast and the swath edge (where the charts become 255) are none
either. The distance is measured from each 80 m pixel to the nearest border pixel, before
downsampling, and a store pixel takes its centre pixel's distance, as its chart does. Land is
distance-to-land zone 0 (``distance_map``); a store pixel is land when any of its 80 m pixels is.
Stores written before the layers existed stay readable; the filters then ask for
``seaice preprocess --overwrite``.

A scene file is written under a temporary name and renamed when complete, so a killed worker
never leaves a scene that looks done. Reading opens files lazily (once per process) and reads
only the chunks under a window: workers never hold the store in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from datetime import datetime
from functools import cached_property
from pathlib import Path

import netCDF4
import numpy as np

from seaice_mlflow.core.errors import ParameterError, SeaIceError, looked_at
from seaice_mlflow.core.io import add_variable, atomic_netcdf
from seaice_mlflow.core.tiling import Window
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES, CHARTS, IGNORE_INDEX
from seaice_mlflow.tasks.autoice.downsample import downsample_chart, downsample_mean, downsample_valid
from seaice_mlflow.tasks.autoice.files.metadata import SceneMetadata, read_season_table, scene_metadata
from seaice_mlflow.tasks.autoice.files.variables import COARSE_VARIABLES, SAR_VARIABLES
from seaice_mlflow.tasks.autoice.grid import assemble_inputs
from seaice_mlflow.tasks.autoice.layers import border_distance, land_mask
from seaice_mlflow.tasks.autoice.scene import Scene
from seaice_mlflow.tasks.autoice.strata import scene_share, select_scenes

STORE_SCHEMA = 1
MANIFEST = "manifest.json"
NORMALISATION = "normalisation.json"
SCENES = "scenes"
CHUNK = 256
SAR_SCALE = np.float32(0.002)
CLASS_POINTS = 512  # pixels remembered per class and scene for class-balanced sampling
COVERAGE_BLOCK = 32  # the coverage map holds the valid SIC fraction of each 32 x 32 block
#: Per-pixel layers of the training filters in every scene file written by this version.
LAYERS = ("border", "land")
#: The manifest fields that define a store's content: the scenes (source checksums, splits,
#: shapes, histograms) and the parameters that made them. The others are provenance (creation
#: time, software version, data folder) or the files that failed, and leave the digest alone.
CONTENT_FIELDS = ("schema_version", "parameters", "normalisation", "scenes")
#: (chart, class) of each row of ``class_points``.
CLASS_ROWS: tuple[tuple[str, int], ...] = tuple((c, k) for c in CHART_NAMES for k in range(CHARTS[c].n_classes))


class StoreError(SeaIceError):
    """The training store is missing, incomplete or from another schema version."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def scene_path(root: Path, scene_id: str) -> Path:
    return Path(root) / SCENES / f"{scene_id}.nc"


def class_census(
    chart: np.ndarray, n_classes: int, rng: np.random.Generator, n: int = CLASS_POINTS
) -> tuple[list[int], np.ndarray]:
    """Pixel count of each class (masked count last) and up to ``n`` random (row, col) pixels of
    each class (rows padded with -1), in one pass per class."""
    points = np.full((n_classes, n, 2), -1, dtype=np.int32)
    flat = chart.ravel()
    counts = [int(c) for c in np.bincount(flat, minlength=256)[:n_classes]]
    for cls in np.flatnonzero(counts):  # a pass per class present
        where = np.flatnonzero(flat == cls)
        pick = rng.choice(where, size=min(n, where.size), replace=False)
        points[cls, : pick.size] = np.column_stack([pick // chart.shape[1], pick % chart.shape[1]])
    return counts + [int(flat.size - sum(counts))], points


def coverage(sic: np.ndarray) -> np.ndarray:
    """Valid fraction (x 255, uint8) of each ``COVERAGE_BLOCK`` block of a SIC chart."""
    from seaice_mlflow.tasks.autoice.downsample import downsample_mean

    valid = (sic != IGNORE_INDEX).astype(np.float32)
    return np.rint(255 * downsample_mean(valid, COVERAGE_BLOCK)).astype(np.uint8)


def pack_sar(values: np.ndarray) -> np.ndarray:
    """z-scores -> int16 steps of :data:`SAR_SCALE` (clipped to +-65 z)."""
    scaled = np.multiply(values, 1 / SAR_SCALE, dtype=np.float32)
    np.clip(scaled, -32767, 32767, out=scaled)
    return np.rint(scaled, out=scaled).astype(np.int16)


def write_scene(root: Path, scene: Scene, variables: Sequence[str], downsample: int, attrs: dict) -> dict:
    """Write one scene's file (atomically) and return its record."""
    sar_names = [v for v in variables if v in SAR_VARIABLES]
    coarse_names = [v for v in variables if v in COARSE_VARIABLES]
    valid80 = scene.sar_valid
    valid = downsample_valid(valid80, downsample)
    h, w = valid.shape
    rng = np.random.default_rng(int(hashlib.sha256(scene.scene_id.encode()).hexdigest()[:8], 16))
    histograms, points = {}, []
    with atomic_netcdf(scene_path(root, scene.scene_id)) as ds:
        for dim, size in (
            ("sar_variable", len(sar_names)),
            ("coarse_variable", len(coarse_names)),
            ("chart", len(CHART_NAMES)),
            ("line", h),
            ("sample", w),
            ("coarse_line", scene.coarse_shape[0]),
            ("coarse_sample", scene.coarse_shape[1]),
            ("tie_line", scene.latitude.shape[0]),
            ("tie_sample", scene.latitude.shape[1]),
            ("class_row", len(CLASS_ROWS)),
            ("point", CLASS_POINTS),
            ("axis", 2),
            ("coverage_line", -(-h // COVERAGE_BLOCK)),
            ("coverage_sample", -(-w // COVERAGE_BLOCK)),
        ):
            ds.createDimension(dim, size)
        if sar_names:
            sar = add_variable(
                ds,
                "sar",
                "i2",
                ("sar_variable", "line", "sample"),
                {"scale_factor": SAR_SCALE, "variables": ",".join(sar_names)},
                (len(sar_names), CHUNK, CHUNK),
                compress=False,
            )
            sar.set_auto_scale(False)  # packed here, faster than netCDF4's own packing
            for i, name in enumerate(sar_names):
                # distance to land is defined everywhere; the SAR variables only where there is SAR
                mask = None if name == "distance_map" else valid80
                sar[i] = pack_sar(downsample_mean(scene.sar[name], downsample, mask))
        if coarse_names:
            add_variable(
                ds,
                "coarse",
                "f4",
                ("coarse_variable", "coarse_line", "coarse_sample"),
                {"variables": ",".join(coarse_names)},
            )[:] = np.stack([scene.coarse[n] for n in coarse_names])
        charts = add_variable(
            ds, "charts", "u1", ("chart", "line", "sample"), {"charts": ",".join(CHART_NAMES)}, (1, CHUNK, CHUNK)
        )  # one chart per chunk: written chart by chart
        for k, name in enumerate(CHART_NAMES):
            chart = downsample_chart(scene.charts[name], downsample)
            charts[k] = chart
            histograms[name], chart_points = class_census(chart, CHARTS[name].n_classes, rng)
            points.append(chart_points)
            if name == "SIC":
                add_variable(ds, "coverage", "u1", ("coverage_line", "coverage_sample"))[:] = coverage(chart)
        add_variable(ds, "valid", "u1", ("line", "sample"), chunks=(CHUNK, CHUNK))[:] = valid
        layers = {
            "border": downsample_chart(border_distance([scene.charts[c] for c in CHART_NAMES]), downsample),
            "land": downsample_valid(land_mask(scene.sar["distance_map"]), downsample),
        }
        for name in LAYERS:
            add_variable(ds, name, "u1", ("line", "sample"), chunks=(CHUNK, CHUNK))[:] = layers[name]
        add_variable(ds, "latitude", "f8", ("tie_line", "tie_sample"))[:] = scene.latitude
        add_variable(ds, "longitude", "f8", ("tie_line", "tie_sample"))[:] = scene.longitude
        add_variable(ds, "class_points", "i4", ("class_row", "point", "axis"))[:] = np.concatenate(points)
        record = {
            **attrs,
            "scene_id": scene.scene_id,
            "provider": scene.provider,
            "date": scene.date.isoformat(),
            "kind": scene.kind,
            "downsample": downsample,
            "shape": [h, w],
            "full_shape": list(scene.shape),
            "coarse_shape": list(scene.coarse_shape),
            "sar_variables": sar_names,
            "coarse_variables": coarse_names,
            "valid_pixels": int(valid.sum()),
            "histograms": histograms,
            "layers": list(LAYERS),
            "metadata": scene_metadata(scene).as_dict(),  # melt/freeze by the rule; a table applies later
        }
        if scene.non_finite:  # what the reader masked or filled (absent when every input value was finite)
            record["non_finite"] = scene.non_finite.as_dict()
        ds.setncattr("record", json.dumps(record))
    return record


def read_record(root: Path, scene_id: str) -> dict | None:
    """The record of a completed scene file, or None when there is none (or it is damaged)."""
    path = scene_path(root, scene_id)
    if not path.is_file():
        return None
    try:
        with netCDF4.Dataset(path) as ds:
            return json.loads(ds.getncattr("record"))
    except (OSError, KeyError, AttributeError, ValueError):
        return None


def content_digest(manifest: dict) -> str:
    """sha256 of the manifest's :data:`CONTENT_FIELDS` as canonical JSON (sorted keys, no spaces):
    the same for the same data and parameters, whenever and from wherever it was preprocessed."""
    content = {name: manifest.get(name) for name in CONTENT_FIELDS}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read_manifest(root: Path) -> dict | None:
    """The manifest of the store ``root``, or None when there is none (or it is damaged)."""
    try:
        manifest = json.loads((Path(root) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def write_manifest(root: Path, manifest: dict) -> None:
    """Write the manifest atomically."""
    tmp = root / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, root / MANIFEST)


class StoreScene:
    """A scene of the store, read lazily window by window (a :class:`grid.SceneSource`)."""

    #: The SAR variables are packed as int16 (:func:`pack_sar`): they cannot hold NaN or inf, so
    #: :func:`grid.assemble_inputs` checks only the 2 km cells of a patch.
    finite_sar = True

    def __init__(self, root: Path, record: dict):
        self.root, self.record = Path(root), record
        self.scene_id = record["scene_id"]
        self.split = record.get("split", "train")
        self.shape = tuple(record["shape"])
        self.full_shape = tuple(record["full_shape"])
        self.coarse_shape = tuple(record["coarse_shape"])
        self.downsample = int(record["downsample"])
        self.month = datetime.fromisoformat(record["date"]).month
        self.sar_variables = list(record["sar_variables"])
        self.coarse_variables = list(record["coarse_variables"])
        self._ds: netCDF4.Dataset | None = None
        self._pid = -1
        self._coverage: np.ndarray | None = None

    def __getstate__(self):  # pickled without the open file (sent to loader workers)
        return {"root": self.root, "record": self.record}

    def __setstate__(self, state):
        self.__init__(**state)

    def variable(self, name: str) -> netCDF4.Variable:
        """A variable of the scene file, opened once per process (HDF5 handles are not fork-safe)."""
        if self._ds is None or self._pid != os.getpid():
            self._ds = netCDF4.Dataset(scene_path(self.root, self.scene_id))
            self._ds.set_auto_mask(False)
            self._pid = os.getpid()
        return self._ds[name]

    @property
    def latitude(self) -> np.ndarray:
        return self.variable("latitude")[:]

    @property
    def longitude(self) -> np.ndarray:
        return self.variable("longitude")[:]

    def read_sar(self, names: Sequence[str], window: Window) -> dict[str, np.ndarray]:
        block = self.variable("sar")[(slice(None), *window.slices)]
        return {n: block[self.sar_variables.index(n)] for n in names}

    def read_coarse(self, names: Sequence[str], rows: slice, cols: slice) -> dict[str, np.ndarray]:
        block = self.variable("coarse")[:, rows, cols]
        return {n: block[self.coarse_variables.index(n)] for n in names}

    def read_charts(self, window: Window | None = None, charts: slice = slice(None)) -> np.ndarray:
        """SIC, SOD, FLOE (or the ``charts`` slice of them) of ``window``, stacked (n, h, w) uint8."""
        window = window or Window.full(self.shape)
        return self.variable("charts")[(charts, *window.slices)]

    def estimated_valid(self, window: Window) -> float:
        """Valid SIC fraction of ``window`` from the coverage map (no chart read; blocks cut by
        the window count whole)."""
        if self._coverage is None:
            self._coverage = self.variable("coverage")[:]
        b = COVERAGE_BLOCK
        blocks = self._coverage[
            window.row // b : -(-(window.row + window.height) // b),
            window.col // b : -(-(window.col + window.width) // b),
        ]
        return float(blocks.mean()) / 255

    @property
    def layers(self) -> tuple[str, ...]:
        """The filter layers (:data:`LAYERS`) the scene file has: none in stores written before them."""
        return tuple(self.record.get("layers", ()))

    def read_layer(self, name: str, window: Window) -> np.ndarray:
        """The ``border`` or ``land`` layer (uint8) of ``window``."""
        return self.variable(name)[window.slices]

    def read_valid(self, window: Window | None = None) -> np.ndarray:
        window = window or Window.full(self.shape)
        return self.variable("valid")[window.slices].astype(bool)

    def inputs(self, variables: Sequence[str], window: Window | None = None) -> np.ndarray:
        return assemble_inputs(self, variables, window)

    def class_points(self, row: int) -> np.ndarray:
        """Sample pixels (n, 2) of ``CLASS_ROWS[row]`` in this scene."""
        points = self.variable("class_points")[row]
        return points[points[:, 0] >= 0]

    def close(self) -> None:
        if self._ds is not None and self._pid == os.getpid():
            self._ds.close()
        self._ds = None


class Store:
    """An opened training store: manifest, parameters and scenes by split."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        path = self.root / MANIFEST
        if not path.is_file():
            problem = (
                "does not exist" if not self.root.exists() else f"has no {MANIFEST}, so it is not a training store"
            )
            raise StoreError(
                f"{looked_at(self.root)} {problem}. Create one with `seaice preprocess --data-dir DIR --out STORE`"
            )
        self.manifest = json.loads(path.read_text())
        version = self.manifest.get("schema_version")
        if version != STORE_SCHEMA:
            raise StoreError(
                f"{self.root}: store schema {version}, this version of seaice-mlflow reads "
                f"{STORE_SCHEMA}; run `seaice preprocess --overwrite` again"
            )
        self.parameters = self.manifest["parameters"]
        #: Training scenes kept by :meth:`select_training_scenes` (None: all of them).
        self.train_only: frozenset[str] | None = None

    @property
    def downsample(self) -> int:
        return int(self.parameters["downsample"])

    @property
    def variables(self) -> list[str]:
        return list(self.parameters["variables"])

    @cached_property
    def digest(self) -> str:
        """Identifies the data a model was trained on: :func:`content_digest` of the manifest, so a
        re-run that changed nothing, or the same files preprocessed from another folder, keep it;
        another scene, split or parameter changes it."""
        return content_digest(self.manifest)

    def scenes(self, split: str | None = None) -> list[StoreScene]:
        return [
            StoreScene(self.root, s)
            for s in self.manifest["scenes"]
            if split in (None, s["split"])
            and (s["split"] != "train" or self.train_only is None or s["scene_id"] in self.train_only)
        ]

    def select_training_scenes(
        self, where: str, season_table: str | Path | None = None, fraction: float = 1.0, seed: int = 0
    ) -> None:
        """Keep only the training scenes whose metadata meet ``where`` (``--scenes-where``; the
        melt/freeze labels from ``season_table`` when given), then ``fraction`` of those
        (``--scene-fraction``, :func:`~.strata.scene_share` with ``seed``); validation scenes stay."""
        if not where and fraction >= 1:
            return
        chosen = [s.scene_id for s in self.scenes("train")]
        if where:
            train = self.scenes("train")
            old = [s.scene_id for s in train if "metadata" not in s.record]
            if old:
                raise ParameterError(
                    "scenes_where",
                    f"{self.root} was written before scene records held their metadata ({len(old)} scene(s), e.g. "
                    f"{old[0]}); run `seaice preprocess --overwrite` on its data",
                )
            table = read_season_table(season_table) if season_table else None
            metadata = {s.scene_id: SceneMetadata.from_dict(s.record["metadata"]).with_seasons(table) for s in train}
            chosen = select_scenes(metadata, where)
        self.train_only = frozenset(scene_share(chosen, fraction, seed))

    def require_finite_inputs(self) -> None:
        """Refuse a store whose 2 km inputs hold values that are not finite (written before preprocess
        filled them, :mod:`.files.nonfinite`): they would reach the network. The packed SAR cannot hold
        them. Reads each scene's 2 km block once (about 3 MB per scene)."""
        for scene in self.scenes():
            if scene.coarse_variables and not np.isfinite(scene.variable("coarse")[:]).all():
                scene.close()
                raise StoreError(
                    f"{self.root}: scene {scene.scene_id} holds AMSR2/ERA5 values that are not finite (NaN or "
                    "inf); run `seaice preprocess --overwrite` on its data (preprocess now fills them)"
                )
            scene.close()

    def require_layer(self, layer: str, option: str, split: str | None = None) -> None:
        """Fail, naming ``option``, when a scene of ``split`` lacks ``layer`` (a store written
        before the filter layers)."""
        old = [s.scene_id for s in self.scenes(split) if layer not in s.layers]
        if old:
            raise ParameterError(
                option,
                f"{self.root} was written before scene files had the {layer} layer ({len(old)} scene(s), "
                f"e.g. {old[0]}); run `seaice preprocess --overwrite` on its data to add it",
            )
