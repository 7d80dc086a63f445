"""Random training patches from the store: the patch dataset and its batch loader.

Sample ``i`` of a run is a pure function of (seed, i): its scene, position, rejections and
augmentations come from a generator seeded with both. So batches are the same whatever the
number of workers, and a run resumed at sample ``i`` continues exactly where it stopped.
Workers open the scene files lazily and read only the chunks under each patch.

Patch filters (IceBench's data preparation), all off by default, where the sampler then reads
and draws exactly as before: ``border_distance`` turns the charts of pixels closer than that
many 80 m pixels to a chart-polygon border (the store's ``border`` layer) into the ignore index,
since charts are least reliable where the analyst drew a line; ``land="exclude"`` draws again a
window holding any land pixel (the ``land`` layer), as IceBench rejects patches with land;
``min_valid`` counts the SIC pixels left after the border mask. A window that fails is drawn
again, at most :data:`MAX_TRIES` times, then the last one is taken. IceBench rejects a whole
patch with any pixel near a border; masking the pixels instead keeps the patches that straddle a
border (a 256 px patch spans 20 km at 80 m, 200 km at x10, and polygons are ~56 km across) and
keeps every border pixel out of the loss all the same.

Batches are written by the loader's worker processes straight into a small ring of
shared-memory buffers made once by the main process, so no batch memory is allocated, faulted
in or copied between processes per batch (on the 2-core benchmark machine that overhead
alone halved throughput).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.core.tiling import Window
from seaice_mlflow.tasks.autoice.augment import Augment, cutmix_box
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES, IGNORE_INDEX
from seaice_mlflow.tasks.autoice.config import LandRule
from seaice_mlflow.tasks.autoice.files.variables import SCENE_VARIABLES
from seaice_mlflow.tasks.autoice.grid import assemble_inputs, take_window
from seaice_mlflow.tasks.autoice.store import CLASS_ROWS, Store, StoreScene

#: Charts whose classes class-balanced sampling equalises (the rare SOD/FLOE classes).
BALANCED_CHARTS = ("SOD", "FLOE")
MAX_TRIES = 20


@dataclass(frozen=True)
class PatchOptions:
    patch_size: int
    variables: tuple[str, ...]
    min_valid: float = 0.3  # reject patches with fewer valid SIC pixels than this fraction
    class_balance: float = 0.0  # fraction of patches centred on a rare SOD/FLOE class
    augment: Augment = Augment()
    border_distance: int = 0  # ignore chart pixels closer than this (80 m pixels) to a polygon border
    land: LandRule = "include"  # exclude: draw again a window that holds land

    @property
    def layers(self) -> dict[str, str]:
        """The store layers these filters read: layer -> the option that needs it."""
        layers = {}
        if self.border_distance:
            layers["border"] = "border_distance"
        if self.land == "exclude":
            layers["land"] = "land"
        return layers


class PatchDataset(Dataset):
    """Patches of the store's ``split`` scenes, indexed by global sample number."""

    def __init__(self, store: Store, options: PatchOptions, seed: int = 0, split: str = "train"):
        self.scenes: list[StoreScene] = store.scenes(split)
        if not self.scenes:
            raise ParameterError("store", f"{store.root} has no {split} scenes")
        missing = [v for v in options.variables if v in SCENE_VARIABLES and v not in store.variables]
        if missing:
            raise ParameterError(
                "variables",
                f"{', '.join(missing)} not in the store {store.root}; preprocess again with them or train without them",
            )
        for layer, option in options.layers.items():
            store.require_layer(layer, option, split)
        self.options, self.seed = options, seed
        valid = np.array([s.record["valid_pixels"] for s in self.scenes], dtype=np.float64)
        self.scene_weights = valid / valid.sum()
        self._balanced = self._balance_table()

    def _balance_table(self) -> list[tuple[int, np.ndarray]]:
        """For each SOD/FLOE ice class present: its class_points row and per-scene weights."""
        table = []
        for row, (chart, cls) in enumerate(CLASS_ROWS):
            if chart not in BALANCED_CHARTS or cls == 0:
                continue
            counts = np.array([s.record["histograms"][chart][cls] for s in self.scenes], dtype=np.float64)
            if counts.sum() > 0:
                table.append((row, counts / counts.sum()))
        return table

    def __len__(self) -> int:  # the batch sampler decides how many; this is only an upper bound
        return np.iinfo(np.int64).max

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """One sample: ``image`` (C, P, P) float32, ``SIC``/``SOD``/``FLOE`` (P, P) uint8 (255 = ignore)."""
        size = self.options.patch_size
        image = np.empty((len(self.options.variables), size, size), np.float32)
        charts = np.empty((len(CHART_NAMES), size, size), np.uint8)
        self._write_patch(np.random.default_rng([self.seed, int(index)]), image, charts)
        sample = {"image": torch.from_numpy(image), "index": torch.tensor(int(index))}
        sample.update({chart: torch.from_numpy(charts[k]) for k, chart in enumerate(CHART_NAMES)})
        return sample

    def write_batch(self, indices: Sequence[int], image: np.ndarray, charts: np.ndarray) -> None:
        """Write samples ``indices`` into ``image`` (B, C, P, P) and ``charts`` (B, 3, P, P), then
        CutMix across the batch (a box of the next sample pasted into inputs and charts alike)."""
        for i, index in enumerate(indices):
            self._write_patch(np.random.default_rng([self.seed, int(index)]), image[i], charts[i])
        n = len(indices)
        if self.options.augment.cutmix and n > 1:
            rng = np.random.default_rng([self.seed, int(indices[0]), 1])
            for i in range(n):
                if rng.random() < self.options.augment.p:
                    j = (i + 1) % n
                    r, c, h, w = cutmix_box(self.options.patch_size, rng)
                    image[i, :, r : r + h, c : c + w] = image[j, :, r : r + h, c : c + w]
                    charts[i, :, r : r + h, c : c + w] = charts[j, :, r : r + h, c : c + w]

    def _write_patch(self, rng: np.random.Generator, image: np.ndarray, charts: np.ndarray) -> None:
        """Draw one patch and write it, augmented, into ``image`` (C, P, P) and ``charts`` (3, P, P)."""
        augment, size = self.options.augment, self.options.patch_size
        read = augment.read_size(size, rng)
        wanted = self.options.min_valid * read * read
        for _ in range(MAX_TRIES):
            scene, window = self._position(rng, read)
            # the coverage map rules out clearly bad windows without reading; SIC decides the rest
            if scene.estimated_valid(window) < 0.7 * self.options.min_valid:
                continue
            if self.options.land == "exclude" and scene.read_layer("land", window).any():
                continue
            sic, near = self._read_sic(scene, window)
            if np.count_nonzero(sic != IGNORE_INDEX) >= wanted:
                break
        else:  # no window good enough in MAX_TRIES: take the last one
            sic, near = self._read_sic(scene, window)
        window_charts = np.concatenate([sic, scene.read_charts(window, slice(1, None))])
        if near is not None:
            window_charts[:, near] = IGNORE_INDEX
        rows, cols, transpose = augment.geometry(size, read, rng)
        # a window cut by the scene edge: pixels past it are padding (no data, charts masked)
        pad_rows, pad_cols = rows >= window.height, cols >= window.width
        rows, cols = np.minimum(rows, window.height - 1), np.minimum(cols, window.width - 1)
        assemble_inputs(scene, self.options.variables, window, rows=rows, cols=cols, transpose=transpose, out=image)
        for k in range(len(CHART_NAMES)):
            take_window(window_charts[k], rows, cols, transpose, out=charts[k])
        if pad_rows.any() or pad_cols.any():
            out_rows, out_cols = (pad_cols, pad_rows) if transpose else (pad_rows, pad_cols)
            image[:, out_rows], image[:, :, out_cols] = 0, 0
            charts[:, out_rows], charts[:, :, out_cols] = IGNORE_INDEX, IGNORE_INDEX

    def _read_sic(self, scene: StoreScene, window: Window) -> tuple[np.ndarray, np.ndarray | None]:
        """SIC (1, h, w) of ``window`` and its pixels within ``border_distance`` of a polygon
        border (None when the filter is off), where this SIC is already ignored."""
        sic = scene.read_charts(window, slice(0, 1))
        if not self.options.border_distance:
            return sic, None
        near = scene.read_layer("border", window) < self.options.border_distance
        sic[:, near] = IGNORE_INDEX
        return sic, near

    def _position(self, rng: np.random.Generator, size: int) -> tuple[StoreScene, Window]:
        """A scene and a window of ``size`` pixels: uniform, or centred on a rare class."""
        if self._balanced and rng.random() < self.options.class_balance:
            row, weights = self._balanced[int(rng.integers(len(self._balanced)))]
            scene = self.scenes[int(rng.choice(len(self.scenes), p=weights))]
            points = scene.class_points(row)
            if len(points):
                r, c = points[int(rng.integers(len(points)))] + rng.integers(-size // 4, size // 4 + 1, 2)
                return scene, clamp_window(scene.shape, int(r) - size // 2, int(c) - size // 2, size)
        scene = self.scenes[int(rng.choice(len(self.scenes), p=self.scene_weights))]
        r = int(rng.integers(0, max(scene.shape[0] - size, 0) + 1))
        c = int(rng.integers(0, max(scene.shape[1] - size, 0) + 1))
        return scene, clamp_window(scene.shape, r, c, size)


def clamp_window(shape: Sequence[int], row: int, col: int, size: int) -> Window:
    """A size x size window moved inside the scene (cut to the scene when it is smaller)."""
    row = int(np.clip(row, 0, max(shape[0] - size, 0)))
    col = int(np.clip(col, 0, max(shape[1] - size, 0)))
    return Window(row, col, min(size, shape[0] - row), min(size, shape[1] - col))


class PatchBatchSampler(Sampler[list[int]]):
    """Batches of global sample indices for one epoch of ``batches`` batches.

    A step of ``world`` data-parallel processes uses ``world * batch_size`` consecutive samples,
    rank ``rank`` the ``rank``-th block; epoch ``e`` starts at sample
    ``e * batches * world * batch_size``. ``skip`` resumes an epoch after that many batches.
    """

    def __init__(self, batch_size: int, batches: int, epoch: int = 0, skip: int = 0, rank: int = 0, world: int = 1):
        self.batch_size, self.batches, self.epoch, self.skip = batch_size, batches, epoch, skip
        self.rank, self.world = rank, world

    def __iter__(self) -> Iterator[list[int]]:
        start = self.epoch * self.batches * self.world * self.batch_size
        for b in range(self.skip, self.batches):
            first = start + (b * self.world + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))

    def __len__(self) -> int:
        return self.batches - self.skip


def ring_slot(first: int, batch_size: int, world: int, slots: int) -> int:
    """Ring slot of the batch starting at sample ``first``: this rank's batches in turn."""
    return (first // batch_size // world) % slots


class _RingWriter(Dataset):
    """What the loader's workers run: write a batch into its ring slot, return the slot number."""

    def __init__(self, dataset: PatchDataset, image: torch.Tensor, charts: torch.Tensor, world: int):
        self.dataset, self.image, self.charts, self.world = dataset, image, charts, world

    def __getitems__(self, indices: list[int]) -> tuple[int, int]:
        slot = ring_slot(indices[0], len(indices), self.world, self.image.shape[0])
        self.dataset.write_batch(indices, self.image[slot].numpy(), self.charts[slot].numpy())
        return slot, indices[0]


def _no_collate(item):
    return item


class PatchLoader:
    """Training batches: ``image`` (B, C, P, P) float32, ``SIC``/``SOD``/``FLOE`` (B, P, P) uint8,
    ``index`` (B,) global sample numbers.

    A batch lives in a shared-memory ring slot that is written again ``slots - 1`` batches later:
    use it (or copy it to the device) within the training step, as a training loop does.
    """

    def __init__(self, dataset: PatchDataset, batch_size: int, workers: int = 2, prefetch: int = 2):
        self.dataset, self.batch_size, self.workers, self.prefetch = dataset, batch_size, workers, prefetch
        slots = workers * prefetch + 2 if workers else 2
        size, channels = dataset.options.patch_size, len(dataset.options.variables)
        self.image = torch.empty((slots, batch_size, channels, size, size), dtype=torch.float32)
        self.charts = torch.empty((slots, batch_size, len(CHART_NAMES), size, size), dtype=torch.uint8)
        if workers:
            self.image.share_memory_()
            self.charts.share_memory_()

    def epoch(
        self, epoch: int, batches: int, skip: int = 0, rank: int = 0, world: int = 1
    ) -> Iterator[dict[str, torch.Tensor]]:
        """This rank's ``batches`` batches of ``epoch``, from batch ``skip`` on."""
        loader = DataLoader(
            _RingWriter(self.dataset, self.image, self.charts, world),
            batch_sampler=PatchBatchSampler(self.batch_size, batches, epoch, skip, rank, world),
            collate_fn=_no_collate,
            num_workers=self.workers,
            prefetch_factor=self.prefetch if self.workers else None,
        )
        for slot, first in loader:
            batch = {"image": self.image[slot], "index": torch.arange(first, first + self.batch_size)}
            batch.update({chart: self.charts[slot, :, k] for k, chart in enumerate(CHART_NAMES)})
            yield batch
