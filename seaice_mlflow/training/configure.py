"""The parts of a training run, each built from a :class:`TrainConfig` by one function and
testable alone; :class:`~seaice_mlflow.training.trainer.Trainer` calls them and then only loops.

The order the Trainer calls them in is part of the exact-resume and same-seed contract: the
network's weights are drawn right after ``torch.manual_seed(config.seed)``; the patch sampler
draws from its own generator (``PatchDataset(seed=...)``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from seaice_mlflow.charts import CHART_NAMES, CHARTS
from seaice_mlflow.data.patches import PatchDataset, PatchLoader, PatchOptions
from seaice_mlflow.data.store import Store
from seaice_mlflow.errors import ParameterError
from seaice_mlflow.inference.engine import resolve_device
from seaice_mlflow.inference.recipe import Recipe
from seaice_mlflow.models import build_model, init_output_bias
from seaice_mlflow.training.distributed import Distributed
from seaice_mlflow.training.losses import MultiTaskLoss, class_weights_from_histograms
from seaice_mlflow.training.options import TrainConfig

Scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts | torch.optim.lr_scheduler.ReduceLROnPlateau


def configure_device(config: TrainConfig, dist: Distributed) -> torch.device:
    """``--device`` resolved; under DDP on GPUs, this process's GPU."""
    device = resolve_device(config.device)
    return torch.device("cuda", dist.local_rank) if device.type == "cuda" and dist.enabled else device


def configure_recipe(config: TrainConfig, store: Store) -> Recipe:
    """How the model will see a scene: network spec, inputs, the store's grid, its scenes."""
    variables = config.input_variables
    return Recipe(model=config.model_spec(len(variables)), variables=variables, downsample=store.downsample,
                  store_digest=store.digest,
                  scenes={split: tuple(s.scene_id for s in store.scenes(split)) for split in ("train", "val")})


def class_census(store: Store) -> dict[str, np.ndarray]:
    """Pixel count of each class (masked count last) of each chart over the training scenes."""
    train_scenes = store.scenes("train")
    if not train_scenes:
        raise ParameterError("store", f"{store.root} has no training scenes")
    return {c: np.sum([s.record["histograms"][c] for s in train_scenes], axis=0) for c in CHART_NAMES}


def configure_network(config: TrainConfig, recipe: Recipe, census: dict[str, np.ndarray],
                      device: torch.device) -> nn.Module:
    """The recipe's network with weights drawn from ``config.seed``; a regressed SIC starts at
    the training scenes' mean class.

    Started at 0, the regression of a short run still shrank towards 0 at the top (100 % ice
    came out as 8-9 on the demo's own training scenes).
    """
    torch.manual_seed(config.seed)
    network = build_model(recipe.model).to(device)
    if config.sic_head == "regression":
        counts = census["SIC"][: CHARTS["SIC"].n_classes]
        init_output_bias(network, "SIC", float(np.arange(counts.size) @ counts / max(counts.sum(), 1)))
    return network


def configure_loss(config: TrainConfig, census: dict[str, np.ndarray], device: torch.device) -> MultiTaskLoss:
    """The multi-task loss: task weights, focal gamma and, for ``--class-weights``, class weights
    from the census."""
    class_weights = None
    if config.weighted_charts:
        totals = {c: census[c].tolist() for c in config.weighted_charts}
        class_weights = {c: w.to(device) for c, w in class_weights_from_histograms(totals).items()}
    return MultiTaskLoss(config.sic_head, config.weights, class_weights, config.focal_gamma)


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


def configure_loader(config: TrainConfig, store: Store) -> PatchLoader:
    """Training batches of the store's training scenes, drawn with ``config.seed``."""
    options = PatchOptions(config.patch_size, config.input_variables, config.min_valid, config.class_balance,
                           config.augmentations)
    return PatchLoader(PatchDataset(store, options, seed=config.seed), config.batch_size, workers=config.workers)
