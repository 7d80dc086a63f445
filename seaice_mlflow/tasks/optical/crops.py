"""Training crops of photos and whole photos as tile sources, normalised alike.

Training samples are random crops of the training photos at full resolution, with the image and
its label transformed together by torchvision's transforms v2 (a random resized crop, nearest
neighbour for the label, then a horizontal flip; colour jitter on the image only). Photos are
upright, so there are no vertical flips or quarter turns. Sample ``i`` is a pure function of
(seed, i): the transforms draw from torch's generator re-seeded for the sample (in a forked RNG
state, so nothing else is disturbed), so batches repeat whatever the number of workers and a
resumed run continues where it stopped. Photos are decoded once per loader process and kept.

Inputs are RGB scaled to [0, 1] and standardised with :data:`MEAN` and :data:`STD` (ImageNet's,
what the encoders' pretrained weights expect); the recipe of a model records them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from seaice_mlflow.core.tiling import Window
from seaice_mlflow.tasks.autoice.patches import PatchBatchSampler
from seaice_mlflow.tasks.optical.labels import IGNORE, ClassTable
from seaice_mlflow.tasks.optical.readers import Photo, read_pair

#: Channel means and standard deviations of RGB in [0, 1] (ImageNet's).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
#: The head of the optical task (``ClassTable.to_task``).
HEAD = "ice"


def normalise(rgb: np.ndarray, mean: Sequence[float] = MEAN, std: Sequence[float] = STD) -> np.ndarray:
    """uint8 (..., H, W, 3) -> float32 (..., 3, H, W) inputs standardised with ``mean`` and ``std``."""
    x = np.moveaxis(np.asarray(rgb, np.float32) / 255.0, -1, -3)
    return (x - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]


class PhotoTiles:
    """A photo's model inputs, window by window (a :class:`~seaice_mlflow.core.tiling.TileSource`)."""

    def __init__(self, rgb: np.ndarray, mean: Sequence[float] = MEAN, std: Sequence[float] = STD):
        self.rgb, self.mean, self.std = rgb, mean, std
        self.shape = tuple(rgb.shape[:2])

    def read(self, window: Window) -> np.ndarray:
        return normalise(self.rgb[window.slices], self.mean, self.std)


class PhotoCrops(Dataset):
    """Random crops of ``size`` pixels of labelled photos, image and label transformed together."""

    def __init__(self, photos: Sequence[Photo], table: ClassTable, size: int, seed: int = 0, augment: bool = True):
        self.photos = [p for p in photos if p.label is not None]
        if not self.photos:
            raise ValueError("no labelled photo to train on")
        self.table, self.size, self.seed = table, size, seed
        steps: list = [v2.RandomResizedCrop(size, scale=(0.1, 1.0), antialias=True)]
        if augment:
            steps += [v2.RandomHorizontalFlip(), v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03)]
        self.transform = v2.Compose(steps)
        self._decoded: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:  # the batch sampler decides how many; this is only an upper bound
        return np.iinfo(np.int64).max

    def pair(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Photo ``k``'s image (H, W, 3) and class indices (H, W), decoded once."""
        if k not in self._decoded:
            rgb, label = read_pair(self.photos[k], self.table)
            self._decoded[k] = (np.array(rgb), np.array(label))  # writable copies, as torch asks
        return self._decoded[k]

    def layers(self, k: int) -> dict[str, np.ndarray]:
        """More per-pixel layers (H, W) of photo ``k`` that crops carry, transformed with the label
        (nearest neighbour); none here (a floe detector's crops add the floe instances)."""
        return {}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """``image`` (3, P, P) float32 standardised, ``ice`` (P, P) uint8 class indices (255: ignore)
        and the crop of every :meth:`layers` layer (int32)."""
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(self.seed * 1_000_003 + int(index))
            k = int(torch.randint(len(self.photos), ()).item())
            rgb, label = self.pair(k)
            image = tv_tensors.Image(torch.from_numpy(rgb).permute(2, 0, 1))
            masks = {HEAD: label, **self.layers(k)}
            layers = [tv_tensors.Mask(torch.from_numpy(m)[None]) for m in masks.values()]
            image, *cropped = self.transform(image, *layers)
        inputs = normalise(image.permute(1, 2, 0).numpy())
        layers = {name: crop[0].to(torch.uint8 if name == HEAD else torch.int32) for name, crop in zip(masks, cropped)}
        return {"image": torch.from_numpy(inputs), **layers, "index": torch.tensor(int(index))}

    def class_counts(self) -> np.ndarray:
        """Labelled pixels per class over the training photos (class weights)."""
        counts = np.zeros(len(self.table.classes), np.int64)
        for k in range(len(self.photos)):
            label = self.pair(k)[1]
            counts += np.bincount(label[label != IGNORE].ravel(), minlength=len(counts))[: len(counts)]
        return counts


class PhotoLoader:
    """Batches of crops, ``epoch(...)`` as the training loop asks (the SAR patches' batch sampler)."""

    def __init__(self, dataset: PhotoCrops, batch_size: int, workers: int = 2):
        self.dataset, self.batch_size, self.workers = dataset, batch_size, workers

    def epoch(self, epoch: int, batches: int, skip: int = 0, rank: int = 0, world: int = 1) -> Iterator[dict]:
        loader = DataLoader(
            self.dataset,
            batch_sampler=PatchBatchSampler(self.batch_size, batches, epoch, skip, rank, world),
            num_workers=self.workers,
            persistent_workers=False,
        )
        yield from loader
