"""A floe training run: photos -> a Mask R-CNN of ice floes, through the same loop as the segmentation models.

The parts mirror :class:`~seaice_mlflow.tasks.optical.training.PhotoTraining`: the same folder,
the same random crops of the training photos (each crop also carries the photo's floe instances,
:class:`FloeCrops`), AdamW with cosine warm restarts, and the generic
:class:`~seaice_mlflow.core.trainer.Trainer` (epochs, AMP, gradient clipping, checkpoints). The
network is the registry's ``maskrcnn``; it computes its own losses (:class:`FloeObjective`, the
loop's ``TrainingParts.objective``), reported per loss: ``train_loss_classifier``,
``train_loss_box_reg``, ``train_loss_mask``, ``train_loss_objectness``, ``train_loss_rpn_box_reg``.

Floes are instances of the ``--floe-classes`` regions, found at the photo's full resolution and
then cropped and resized with the image (nearest neighbour), so floes that touch in a
downsampled crop, where a one-pixel watershed boundary may vanish, stay apart. Validation detects
the floes of each whole validation photo (no tiles: the detector resizes it) and scores them by
floe F1 at mask IoU 0.5 (:mod:`~seaice_mlflow.tasks.optical.floes.scores`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from seaice_mlflow.core.distributed import Distributed
from seaice_mlflow.core.engine import resolve_device
from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.core.trainer import Trainer
from seaice_mlflow.models import build_model, get_architecture
from seaice_mlflow.models.detection import FLOE_OUTPUTS, FLOES
from seaice_mlflow.tasks.optical.config import OpticalTrainDefaults
from seaice_mlflow.tasks.optical.crops import PhotoCrops
from seaice_mlflow.tasks.optical.floes.instances import (
    compact_instances,
    floe_class_indices,
    floe_instances,
    instance_targets,
)
from seaice_mlflow.tasks.optical.floes.pyfunc import detect_floes
from seaice_mlflow.tasks.optical.floes.scores import FloeScores, score_floe_photos
from seaice_mlflow.tasks.optical.labels import ClassTable
from seaice_mlflow.tasks.optical.readers import Photo, PhotoFolder
from seaice_mlflow.tasks.optical.recipe import PhotoRecipe
from seaice_mlflow.tasks.optical.training import FolderTraining, network_spec, photo_trainer, training_photos

#: Mask R-CNN's losses (torchvision's ``loss_<name>``), the "heads" of the training loop.
LOSSES = ("classifier", "box_reg", "mask", "objectness", "rpn_box_reg")


class FloeCrops(PhotoCrops):
    """:class:`~seaice_mlflow.tasks.optical.crops.PhotoCrops` (the same crops of the same photos)
    with each crop's floe instances, ``floes`` (P, P) int32, cropped and resized with it."""

    def __init__(self, photos: Sequence[Photo], table: ClassTable, size: int, floe_indices: Sequence[int],
                 min_pixels: int = 1, seed: int = 0, augment: bool = True):  # fmt: skip
        super().__init__(photos, table, size, seed=seed, augment=augment)
        self.floe_indices, self.min_pixels = tuple(floe_indices), min_pixels
        self._floes: dict[int, np.ndarray] = {}

    def layers(self, k: int) -> dict[str, np.ndarray]:
        """Photo ``k``'s floe instances at full resolution (found once, kept)."""
        if k not in self._floes:
            self._floes[k] = floe_instances(self.pair(k)[1], self.floe_indices, self.min_pixels)
        return {FLOES: self._floes[k]}


class FloeObjective(nn.Module):
    """Mask R-CNN's losses of a batch of crops: the targets of each crop's floes (fragments under
    ``min_pixels`` left out), the network's loss dict, and their sum."""

    def __init__(self, min_pixels: int = 1):
        super().__init__()
        self.min_pixels = min_pixels

    def forward(self, model: nn.Module, image: Tensor, batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        targets = []
        for floes in batch[FLOES]:
            found = instance_targets(compact_instances(floes.cpu().numpy(), self.min_pixels))
            targets.append({k: torch.from_numpy(v).to(image.device, non_blocking=True) for k, v in found.items()})
        losses = model(list(image), targets)
        named = {name.removeprefix("loss_"): value.float() for name, value in losses.items()}
        return torch.stack(list(named.values())).sum(), named


@dataclass
class FloeTraining(FolderTraining):
    """One floe training run: its photos, recipe, floe classes and the generic loop."""

    options: OpticalTrainDefaults
    folder: PhotoFolder
    recipe: PhotoRecipe
    floe_indices: tuple[int, ...]
    trainer: Trainer

    @classmethod
    def build(cls, data_dir: str | Path, options: OpticalTrainDefaults, dist: Distributed = Distributed()):
        """Every part, weights drawn right after ``torch.manual_seed(options.seed)``."""
        if get_architecture(options.model).level != "instance":
            raise ParameterError("model", f"{options.model} is not a floe detector; train it as a segmentation "
                                 "model (tasks.optical.training)")  # fmt: skip
        if options.class_weights != "none":
            raise ParameterError("class_weights", f"weighs the classes of a segmentation loss; {options.model} "
                                 "has its own losses (leave --class-weights at none)")  # fmt: skip
        device = resolve_device(options.device)
        folder, train = training_photos(data_dir, options)
        floe_indices = floe_class_indices(folder.table, options.floe_classes)
        spec = network_spec(options, FLOE_OUTPUTS)
        torch.manual_seed(options.seed)
        network = build_model(spec).to(device)
        crops = FloeCrops(train, folder.table, options.patch_size, floe_indices, options.min_floe_pixels,
                          seed=options.seed, augment=options.augment)  # fmt: skip
        objective = FloeObjective(options.min_floe_pixels)
        recipe = PhotoRecipe(spec, folder.table, floe_classes=tuple(folder.table.names[i] for i in floe_indices),
                             min_floe_pixels=options.min_floe_pixels, photos=folder.digests())  # fmt: skip
        trainer = photo_trainer(options, network, recipe, crops, objective, LOSSES, device, dist, objective)
        return cls(options, folder, recipe, floe_indices, trainer).validated()

    def validate(self) -> FloeScores:
        """Floe detection scores on the whole validation photos (F1 first)."""

        def detect(rgb: np.ndarray) -> np.ndarray:
            return detect_floes(self.network, rgb, self.recipe, self.trainer.device, amp=self.trainer.amp)[0]

        board = score_floe_photos(self.validation_photos(), self.folder.table, self.recipe.floe_classes,
                                  self.recipe.min_floe_pixels, detect)  # fmt: skip
        self.network.train()
        return board.pooled()
