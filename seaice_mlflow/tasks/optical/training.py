"""An optical training run: photos -> a segmentation network, through the same loop as the SAR charts.

The parts are built from the options and handed to :class:`~seaice_mlflow.core.trainer.Trainer`
(epochs, AMP, gradient clipping, checkpoints, exact resume): a network of the model registry
for the folder's class table (one head, ``ice``), the multi-task loss with that one head
(optionally class-weighted), AdamW with cosine warm restarts, random crops of the training
photos, and validation on the whole validation photos, tiled by the same engine as the SAR
scenes, scored by mIoU (the head's score: mean IoU over the classes present, 255 ignored).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from seaice_mlflow.core.distributed import Distributed
from seaice_mlflow.core.engine import ChartPredictor, TileOptions, resolve_device
from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.core.losses import MultiTaskLoss, class_weights_from_histograms
from seaice_mlflow.core.metrics import ScoreBoard, Scores
from seaice_mlflow.core.task import TaskSpec
from seaice_mlflow.core.trainer import LoopSettings, Objective, Trainer, TrainingParts, ValidationScores
from seaice_mlflow.models import ModelSpec, build_model, spec_from_options
from seaice_mlflow.tasks.optical.config import OpticalTrainDefaults
from seaice_mlflow.tasks.optical.crops import HEAD, PhotoCrops, PhotoLoader, PhotoTiles
from seaice_mlflow.tasks.optical.readers import Photo, PhotoFolder, open_folder, read_pair
from seaice_mlflow.tasks.optical.recipe import RGB, PhotoRecipe


def training_photos(data_dir: str | Path, options: OpticalTrainDefaults) -> tuple[PhotoFolder, list[Photo]]:
    """The folder as the options open it, and its labelled training photos (a clear error for none)."""
    folder = open_folder(data_dir, classes=options.classes or None, masks=options.masks, seed=options.seed)
    train = [p for p in folder.split("train") if p.label is not None]
    if not train:
        raise ParameterError("data_dir", f"{data_dir} holds no labelled training photo; check it with "
                             "`seaice optical inspect`")  # fmt: skip
    return folder, train


def network_spec(options: OpticalTrainDefaults, outputs: Mapping[str, int]) -> ModelSpec:
    """The spec of ``--model`` for RGB inputs and ``outputs``, its options from the command's."""
    values = {**asdict(options), "pretrained": options.pretrained or None}
    return spec_from_options(options.model, len(RGB), outputs, values)


def photo_trainer(
    options: OpticalTrainDefaults,
    network: torch.nn.Module,
    recipe: PhotoRecipe,
    crops: PhotoCrops,
    loss: torch.nn.Module,
    heads: tuple[str, ...],
    device: torch.device,
    dist: Distributed = Distributed(),
    objective: Objective | None = None,
) -> Trainer:
    """The generic loop as every optical model trains: batches of ``crops``, AdamW with cosine warm
    restarts over the epochs, gradients clipped at 1, checkpoints carrying the recipe and options;
    ``objective`` for a network that computes its own losses (the validation is set by the caller)."""
    optimizer = torch.optim.AdamW(network.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=options.epochs)
    loader = PhotoLoader(crops, options.batch_size, options.workers)
    extras = lambda: {"recipe": recipe.as_dict(), "config": asdict(options)}  # noqa: E731
    parts = TrainingParts(network, loss, optimizer, scheduler, loader, heads, checkpoint_extras=extras,
                          objective=objective)  # fmt: skip
    settings = LoopSettings(out=Path(options.out), epochs=options.epochs, batches_per_epoch=options.batches_per_epoch,
                            batch_size=options.batch_size, amp=options.amp, lr=options.lr, grad_clip=1.0)  # fmt: skip
    return Trainer(parts, settings, device, dist)


class FolderTraining:
    """What every optical training run shares: a photo folder (``folder``) and the loop (``trainer``)."""

    folder: PhotoFolder
    trainer: Trainer

    @property
    def network(self) -> torch.nn.Module:
        return self.trainer.network

    def validation_photos(self) -> list[Photo]:
        return [p for p in self.folder.split("val") if p.label is not None]

    def validate(self) -> ValidationScores:
        """The network's scores on the validation photos (each kind of run scores its own way)."""
        raise NotImplementedError

    def validated(self):
        """This run, its loop validating (:meth:`validate`) when the folder has validation photos."""
        if self.validation_photos():
            self.trainer.parts.validate = self.validate
        return self


@dataclass
class PhotoTraining(FolderTraining):
    """One optical training run: its photos, recipe, task and the generic loop."""

    options: OpticalTrainDefaults
    folder: PhotoFolder
    recipe: PhotoRecipe
    task: TaskSpec
    trainer: Trainer

    @classmethod
    def build(cls, data_dir: str | Path, options: OpticalTrainDefaults, dist: Distributed = Distributed()):
        """Every part, weights drawn right after ``torch.manual_seed(options.seed)``."""
        device = resolve_device(options.device)
        folder, train = training_photos(data_dir, options)
        task = folder.table.to_task()
        spec = network_spec(options, task.outputs())
        torch.manual_seed(options.seed)
        network = build_model(spec).to(device)
        crops = PhotoCrops(train, folder.table, options.patch_size, seed=options.seed, augment=options.augment)
        weights = None
        if options.class_weights == "balanced":  # the counts and a masked count of 0, as the core takes them
            counts = {HEAD: [*crops.class_counts().tolist(), 0]}
            weights = {h: w.to(device) for h, w in class_weights_from_histograms(task, counts).items()}
        loss = MultiTaskLoss(task, {HEAD: 1.0}, weights)
        recipe = PhotoRecipe(spec, folder.table, photos=folder.digests())
        trainer = photo_trainer(options, network, recipe, crops, loss, task.names, device, dist)
        return cls(options, folder, recipe, task, trainer).validated()

    def validate(self) -> Scores:
        """The head's scores on the whole validation photos (tiled inference, mIoU first)."""
        predictor = ChartPredictor([(self.network, self.task)], self.trainer.device,
                                   TileOptions(tile=self.options.val_tile, amp=self.options.amp))  # fmt: skip
        board = ScoreBoard(self.task)
        for photo in self.validation_photos():
            rgb, label = read_pair(photo, self.folder.table)
            tiles = PhotoTiles(rgb, self.recipe.mean, self.recipe.std)
            board.add(photo.stem, {HEAD: label}, predictor.predict(tiles).charts)
        self.network.train()
        return board.pooled()
