"""The AutoICE training run: its parts, each built from a :class:`TrainConfig` by one function and
testable alone, handed to the generic loop (:class:`~seaice_mlflow.core.trainer.Trainer`).

:meth:`ChartTraining.build` calls them in an order that is part of the exact-resume and same-seed
contract: the network's weights are drawn right after ``torch.manual_seed(config.seed)``; the
patch sampler draws from its own generator (``PatchDataset(seed=...)``). After the loop,
:meth:`ChartTraining.calibrate` fits a temperature per classified head on the validation scenes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seaice_mlflow.core.calibration import HeadCalibration, calibrate, sample_logits
from seaice_mlflow.core.distributed import Distributed
from seaice_mlflow.core.engine import ChartPrediction, ChartPredictor, TileOptions, resolve_device
from seaice_mlflow.core.errors import ParameterError, option_name
from seaice_mlflow.core.losses import MultiTaskLoss, class_weights_from_histograms
from seaice_mlflow.core.metrics import ScoreBoard, Scores, head_metrics
from seaice_mlflow.core.trainer import EpochReport, LoopSettings, Scheduler, Trainer, TrainingParts, TrainingState
from seaice_mlflow.models import build_model, init_output_bias
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES
from seaice_mlflow.tasks.autoice.patch_targets import HomogeneousPatchDataset, patch_confusion
from seaice_mlflow.tasks.autoice.patches import PatchDataset, PatchLoader, PatchOptions
from seaice_mlflow.tasks.autoice.recipe import Recipe
from seaice_mlflow.tasks.autoice.sources import SceneTiles
from seaice_mlflow.tasks.autoice.store import Store, StoreScene
from seaice_mlflow.tasks.autoice.train_config import RESUMABLE, TrainConfig, option_value


def configure_device(config: TrainConfig, dist: Distributed) -> torch.device:
    """``--device`` resolved; under DDP on GPUs, this process's GPU."""
    device = resolve_device(config.device)
    return torch.device("cuda", dist.local_rank) if device.type == "cuda" and dist.enabled else device


def configure_recipe(config: TrainConfig, store: Store) -> Recipe:
    """How the model will see a scene: network spec, inputs, the store's grid, its scenes."""
    variables = config.input_variables
    return Recipe(
        model=config.model_spec(len(variables)),
        task=config.task,
        variables=variables,
        downsample=store.downsample,
        store_digest=store.digest,
        scenes={split: tuple(s.scene_id for s in store.scenes(split)) for split in ("train", "val")},
    )


def class_census(store: Store) -> dict[str, np.ndarray]:
    """Pixel count of each class (masked count last) of each chart over the training scenes."""
    train_scenes = store.scenes("train")
    if not train_scenes:
        raise ParameterError("store", f"{store.root} has no training scenes")
    return {c: np.sum([s.record["histograms"][c] for s in train_scenes], axis=0) for c in CHART_NAMES}


def configure_network(
    config: TrainConfig, recipe: Recipe, census: dict[str, np.ndarray], device: torch.device
) -> nn.Module:
    """The recipe's network with weights drawn from ``config.seed``; a regressed SIC starts at
    the training scenes' mean class.

    Started at 0, the regression of a short run still shrank towards 0 at the top (100 % ice
    came out as 8-9 on the demo's own training scenes).
    """
    torch.manual_seed(config.seed)
    network = build_model(recipe.model).to(device)
    for head in recipe.task.heads:
        if head.kind == "regression":
            counts = census[head.name][: head.n_classes]
            init_output_bias(network, head.name, float(np.arange(counts.size) @ counts / max(counts.sum(), 1)))
    return network


def configure_loss(config: TrainConfig, census: dict[str, np.ndarray], device: torch.device) -> MultiTaskLoss:
    """The multi-task loss: task weights, focal gamma and, for ``--class-weights``, class weights
    from the census."""
    class_weights = None
    if config.weighted_charts:
        totals = {c: census[c].tolist() for c in config.weighted_charts}
        class_weights = {c: w.to(device) for c, w in class_weights_from_histograms(config.task, totals).items()}
    return MultiTaskLoss(config.task, config.weights, class_weights, config.focal_gamma)


def configure_optimizer(config: TrainConfig, parameters) -> torch.optim.Optimizer:
    """AdamW, or SGD with momentum."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)


def configure_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer) -> Scheduler:
    """Cosine warm restarts every ``restart_epochs`` (stepped per batch), or x0.5 after 4 epochs
    without a better validation score."""
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=config.restart_epochs)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=4)


def patch_options(config: TrainConfig) -> PatchOptions:
    """How training patches are read and augmented (a patch classifier's: no zoom, no CutMix)."""
    augment = config.augmentations
    if config.level == "patch":
        augment = replace(augment, scale=False, cutmix=False)
    return PatchOptions(
        config.patch_size,
        config.input_variables,
        min_valid=config.min_valid,
        class_balance=config.class_balance,
        augment=augment,
        border_distance=config.border_distance,
        land=config.land,
    )


def configure_loader(config: TrainConfig, store: Store) -> PatchLoader:
    """Training batches of the store's training scenes, drawn with ``config.seed``: random
    windows for a segmentation model, homogeneous windows for a patch classifier."""
    options = patch_options(config)
    if config.level == "patch":
        n_classes = {h.name: h.n_classes for h in config.task.heads}
        dataset = HomogeneousPatchDataset(store, options, config.patch_rule, n_classes, seed=config.seed)
        return PatchLoader(dataset, config.batch_size, workers=config.workers)
    return PatchLoader(PatchDataset(store, options, seed=config.seed), config.batch_size, workers=config.workers)


def loop_settings(config: TrainConfig) -> LoopSettings:
    return LoopSettings(
        out=Path(config.out),
        epochs=config.epochs,
        batches_per_epoch=config.batches_per_epoch,
        batch_size=config.batch_size,
        early_stopping=config.early_stopping,
        time_limit_s=60 * config.max_minutes,
        grad_clip=config.grad_clip,
        amp=config.amp,
        lr=config.lr,
    )


@dataclass
class ChartTraining:
    """One AutoICE training run: its store and recipe, the validation scenes and the generic loop."""

    config: TrainConfig
    store: Store
    recipe: Recipe
    val_scenes: list[StoreScene]
    trainer: Trainer

    @classmethod
    def build(cls, config: TrainConfig, dist: Distributed = Distributed()) -> ChartTraining:
        """Every part, in the order of the same-seed contract (module docstring)."""
        device = configure_device(config, dist)
        store = Store(config.store)
        store.require_finite_inputs()
        store.select_training_scenes(
            config.scenes_where, config.season_table or None, config.scene_fraction, config.seed
        )
        recipe = configure_recipe(config, store)
        census = class_census(store)
        network = configure_network(config, recipe, census, device)
        loss = configure_loss(config, census, device)
        optimizer = configure_optimizer(config, network.parameters())
        scheduler = configure_scheduler(config, optimizer)
        loader = configure_loader(config, store)
        parts = TrainingParts(
            network,
            loss,
            optimizer,
            scheduler,
            loader,
            recipe.task.names,
            checkpoint_extras=lambda: {"recipe": recipe.as_dict(), "config": config.as_params()},
        )
        training = cls(config, store, recipe, store.scenes("val"), Trainer(parts, loop_settings(config), device, dist))
        if training.val_scenes:
            parts.validate = lambda: training.validate()[0]
        return training

    @property
    def network(self) -> torch.nn.Module:
        return self.trainer.network

    @property
    def state(self) -> TrainingState:
        return self.trainer.state

    def fit(self, on_epoch: Callable[[EpochReport], None] | None = None) -> TrainingState:
        """Train until ``--epochs`` or early stopping (:meth:`Trainer.fit`)."""
        return self.trainer.fit(on_epoch)

    def predictor(self) -> ChartPredictor:
        return ChartPredictor(
            [(self.network, self.recipe.task)],
            self.trainer.device,
            TileOptions(tile=self.config.val_tile, amp=self.config.amp),
        )

    def validate(self) -> tuple[Scores, dict[str, ChartPrediction]]:
        """Official score of the current network on the validation scenes (whole scenes, tiled)."""
        predictor = self.predictor()
        board, predictions = ScoreBoard(self.recipe.task), {}
        for scene in self.val_scenes:
            prediction = predictor.predict(SceneTiles(scene, self.recipe.variables, scene.downsample))
            reference = dict(zip(CHART_NAMES, scene.read_charts()))
            board.add(scene.scene_id, reference, prediction.charts)
            predictions[scene.scene_id] = prediction
        self.network.train()
        return board.pooled(), predictions

    def calibrate(self) -> dict[str, HeadCalibration]:
        """Temperature scaling of the current network's classified heads on a random sample of the
        validation scenes' valid pixels (drawn with ``--seed``); empty without validation scenes."""
        if not self.val_scenes:
            return {}
        scenes = (
            (SceneTiles(scene, self.recipe.variables, scene.downsample), dict(zip(CHART_NAMES, scene.read_charts())))
            for scene in self.val_scenes
        )
        task, device = self.recipe.task, self.trainer.device
        return calibrate(sample_logits(self.network, task, scenes, device, self.config.val_tile, seed=self.config.seed))

    def patch_metrics(self, split: str = "val") -> dict[str, float]:
        """A patch classifier's patch-level metrics on the homogeneous patches of ``split``
        (``patch_<chart>_accuracy``, ``_f1``, ``_iou``, ...; the rule's first chart); none for a
        segmentation model or without such patches."""
        if self.config.level != "patch" or not self.store.scenes(split):
            return {}
        rule = self.config.patch_rule
        n_classes = {h.name: h.n_classes for h in self.recipe.task.heads}
        try:
            dataset = HomogeneousPatchDataset(self.store, patch_options(self.config), rule, n_classes, split=split)
        except ParameterError:  # no homogeneous patch among these scenes
            return {}
        head = self.recipe.task.head(rule.charts[0])
        cm = patch_confusion(self.network, dataset, head, self.trainer.device)
        self.network.train()
        return {f"patch_{head.name}_{k}": v for k, v in head_metrics(head, cm).scalars().items()}

    def patch_manifest(self) -> list[dict[str, object]]:
        """The training patches of a patch classifier (scene, window, class); empty otherwise."""
        dataset = self.trainer.parts.loader.dataset
        return dataset.manifest_rows() if isinstance(dataset, HomogeneousPatchDataset) else []

    def resume(self, path: Path) -> dict:
        """Continue from a checkpoint of this experiment (:meth:`accept_checkpoint`); returns it."""
        return self.trainer.resume(path, self.accept_checkpoint)

    def accept_checkpoint(self, path: Path, checkpoint: dict) -> None:
        """Refuse, naming the options, a checkpoint trained with other options than this config
        (except :data:`~seaice_mlflow.tasks.autoice.train_config.RESUMABLE`) or on other data."""
        conflicts = self.config.resume_conflicts(checkpoint.get("config", {}))
        if conflicts:
            trained = " ".join(f"{option_name(k)} {option_value(old)}" for k, (old, _) in conflicts.items())
            given = " ".join(f"{option_name(k)} {option_value(new)}" for k, (_, new) in conflicts.items())
            raise ParameterError(
                "resume",
                f"{path} was trained with {trained}, not {given}; resume with the "
                "checkpoint's values (only " + ", ".join(map(option_name, RESUMABLE)) + " may change)",
            )
        recipe = self.recipe.as_dict()
        if any(checkpoint["recipe"].get(k) != recipe[k] for k in ("model", "variables", "downsample", "store_digest")):
            raise ParameterError(
                "resume",
                f"{path} was trained on other data (store digest "
                f"{str(checkpoint['recipe'].get('store_digest'))[:12]}, --store {self.store.root} has "
                f"{str(recipe['store_digest'])[:12]}); resume with the store it was trained on",
            )
