"""The training loop: patches from the store, multi-task loss, validation on whole held-out scenes.

Each epoch trains ``batches_per_epoch`` batches, validates on the store's ``val`` scenes with the
official score (full-scene tiled inference), steps the schedule, writes ``best.pt`` when the
combined score improved and then ``last.pt`` (in that order: a kill between the two leaves a
``last.pt`` whose best epoch is the one in ``best.pt``, or older, so a resume from it is exact),
and stops early after ``early_stopping`` epochs without improvement. A non-finite loss or weight
stops training with :class:`TrainingDiverged` before anything non-finite is written. Under
``torchrun`` it trains data parallel; only rank 0 validates, writes checkpoints and reports.
MLflow logging lives in :mod:`seaice_mlflow.tracking.training`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from seaice_mlflow.charts import CHART_NAMES
from seaice_mlflow.data.store import Store, StoreScene
from seaice_mlflow.errors import ParameterError, SeaIceError, option_name
from seaice_mlflow.inference.engine import ChartPrediction, ChartPredictor, TileOptions
from seaice_mlflow.inference.sources import SceneTiles
from seaice_mlflow.models import non_finite_weights
from seaice_mlflow.scoring.metrics import ScoreBoard, Scores
from seaice_mlflow.training.checkpoint import BEST, LAST, load_checkpoint, restore_random_state, save_checkpoint
from seaice_mlflow.training.configure import (
    class_census,
    configure_device,
    configure_loader,
    configure_loss,
    configure_network,
    configure_optimizer,
    configure_recipe,
    configure_scheduler,
)
from seaice_mlflow.training.distributed import Distributed
from seaice_mlflow.training.options import RESUMABLE, TrainConfig, option_value


class TrainingDiverged(SeaIceError):
    """The loss or the weights became nan or inf; nothing of the diverged model was written."""


@dataclass
class EpochReport:
    """What one epoch did; ``metrics`` are the MLflow metric names and values."""

    epoch: int
    metrics: dict[str, float]
    improved: bool
    checkpoint: Path | None = None
    seconds: float = 0.0  # training and validation


@dataclass
class TrainingState:
    epoch: int = 0  # epochs completed
    best: float = -math.inf
    best_epoch: int = -1
    since_best: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


class Trainer:
    """The training loop over parts built by :mod:`seaice_mlflow.training.configure`."""

    def __init__(self, config: TrainConfig, dist: Distributed = Distributed()):
        self.config, self.dist = config, dist
        self.device = configure_device(config, dist)
        self.store = Store(config.store)
        self.recipe = configure_recipe(config, self.store)
        census = class_census(self.store)
        self.network = configure_network(config, self.recipe, census, self.device)
        self.model = DistributedDataParallel(self.network) if dist.enabled else self.network
        self.loss = configure_loss(config, census, self.device)
        self.optimizer = configure_optimizer(config, self.network.parameters())
        self.scheduler = configure_scheduler(config, self.optimizer)
        self.amp = config.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.loader = configure_loader(config, self.store)
        self.val_scenes: list[StoreScene] = self.store.scenes("val")
        self.state = TrainingState()
        self.out = Path(config.out)
        self.run_id: str | None = None  # the MLflow run the checkpoints belong to (set by the tracking layer)

    # --- checkpoints -----------------------------------------------------------------------

    def checkpoint_state(self) -> dict:
        return {"model": self.network.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "state": self.state.__dict__, "recipe": self.recipe.as_dict(), "config": self.config.as_params(),
                "run_id": self.run_id}

    def resume(self, path: Path) -> dict:
        """Continue from a checkpoint exactly where it stopped; returns the checkpoint.

        Refused, naming the options, when this config differs from the checkpoint's in anything
        but :data:`~seaice_mlflow.training.options.RESUMABLE`, or the store holds other data.
        """
        checkpoint = load_checkpoint(path)
        conflicts = self.config.resume_conflicts(checkpoint.get("config", {}))
        if conflicts:
            trained = " ".join(f"{option_name(k)} {option_value(old)}" for k, (old, _) in conflicts.items())
            given = " ".join(f"{option_name(k)} {option_value(new)}" for k, (_, new) in conflicts.items())
            raise ParameterError("resume", f"{path} was trained with {trained}, not {given}; resume with the "
                                 "checkpoint's values (only " + ", ".join(map(option_name, RESUMABLE)) + " may change)")
        recipe = self.recipe.as_dict()
        if any(checkpoint["recipe"].get(k) != recipe[k] for k in ("model", "variables", "downsample", "store_digest")):
            raise ParameterError("resume", f"{path} was trained on other data (store digest "
                                 f"{str(checkpoint['recipe'].get('store_digest'))[:12]}, --store {self.store.root} has "
                                 f"{str(recipe['store_digest'])[:12]}); resume with the store it was trained on")
        self.network.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.state = TrainingState(**checkpoint["state"])
        restore_random_state(checkpoint["random"])
        return checkpoint

    # --- the loop --------------------------------------------------------------------------

    def fit(self, on_epoch: Callable[[EpochReport], None] | None = None) -> TrainingState:
        """Train until ``epochs`` or early stopping; returns the final state."""
        while self.state.epoch < self.config.epochs:
            epoch = self.state.epoch
            started = time.perf_counter()
            metrics = self.train_epoch(epoch)
            report = EpochReport(epoch, metrics, improved=False)
            if self.dist.main:
                if self.val_scenes:
                    scores, _ = self.validate()
                    metrics.update(scores.metrics("val"))
                    score = scores.combined
                else:  # no validation scenes: the last epoch is the best
                    score = float(epoch)
                report.improved = score > self.state.best
                if report.improved:
                    self.state.best, self.state.best_epoch, self.state.since_best = score, epoch, 0
                else:
                    self.state.since_best += 1
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(self.dist.broadcast(metrics.get("val_combined", -float(epoch))))
            self.state.epoch = epoch + 1
            if self.dist.main:
                self.state.history.append({"epoch": epoch, **metrics})
                if report.improved:  # best first: see the module docstring
                    save_checkpoint(self.out / BEST, self.checkpoint_state())
                report.checkpoint = save_checkpoint(self.out / LAST, self.checkpoint_state())
                report.seconds = time.perf_counter() - started
                if on_epoch is not None:
                    on_epoch(report)
            patience = self.config.early_stopping
            stop = self.dist.main and bool(self.val_scenes) and patience and self.state.since_best >= patience
            if self.dist.broadcast(float(stop)):
                break
        return self.state

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch of ``batches_per_epoch`` batches; mean losses, learning rate and patches/s."""
        self.model.train()
        cfg = self.config
        totals = {"train_loss": 0.0, **{f"train_loss_{c}": 0.0 for c in CHART_NAMES}}
        start = time.perf_counter()
        batches = self.loader.epoch(epoch, cfg.batches_per_epoch, rank=self.dist.rank, world=self.dist.world)
        bar = tqdm(batches, total=cfg.batches_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=None if self.dist.main else True, leave=False)
        for step, batch in enumerate(bar):
            # channels_last: the NHWC convolutions are ~1.6x faster on CPU (bench_train.py), and suit AMP
            image = batch["image"].to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            targets = {c: batch[c].to(self.device, non_blocking=True) for c in CHART_NAMES}
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
                outputs = self.model(image)
            loss, parts = self.loss({c: o.float() for c, o in outputs.items()}, targets)
            value = float(loss.item())  # the one device sync of the step
            if not math.isfinite(value):
                self.diverged(epoch, f"the loss of batch {step + 1} is {value}")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.grad_clip:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.network.parameters(), cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if isinstance(self.scheduler, torch.optim.lr_scheduler.CosineAnnealingWarmRestarts):
                self.scheduler.step(epoch + (step + 1) / cfg.batches_per_epoch)
            totals["train_loss"] += value
            for chart, part in parts.items():
                totals[f"train_loss_{chart}"] += float(part.item())
            elapsed = time.perf_counter() - start
            bar.set_postfix(loss=f"{totals['train_loss'] / (step + 1):.4f}",
                            patches_s=f"{(step + 1) * cfg.batch_size * self.dist.world / elapsed:.1f}")
        elapsed = time.perf_counter() - start
        broken = non_finite_weights(self.network.state_dict())
        if broken:
            self.diverged(epoch, f"{len(broken)} weight tensors are not finite (e.g. {broken[0]})")
        metrics = {k: self.dist.mean(v / cfg.batches_per_epoch) for k, v in totals.items()}
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        metrics["patches_per_s"] = cfg.batches_per_epoch * cfg.batch_size * self.dist.world / elapsed
        return metrics

    def diverged(self, epoch: int, what: str) -> None:
        """Stop: raise :class:`TrainingDiverged` saying what went wrong and what is left."""
        kept = (f"{self.out / LAST} holds epoch {self.state.epoch} (finite)" if self.state.epoch
                else "no checkpoint was written")
        raise TrainingDiverged(f"training diverged in epoch {epoch + 1}: {what}; {kept}. Train again with a lower "
                               f"--lr (now {self.config.lr:g}) or a --grad-clip (now {self.config.grad_clip:g})")

    def predictor(self) -> ChartPredictor:
        return ChartPredictor([(self.network, self.config.sic_head)], self.device,
                              TileOptions(tile=self.config.val_tile, amp=self.config.amp))

    def validate(self) -> tuple[Scores, dict[str, ChartPrediction]]:
        """Official score of the current model on the validation scenes (whole scenes, tiled)."""
        predictor = self.predictor()
        board, predictions = ScoreBoard(), {}
        for scene in self.val_scenes:
            prediction = predictor.predict(SceneTiles(scene, self.recipe.variables, scene.downsample))
            reference = dict(zip(CHART_NAMES, scene.read_charts()))
            board.add(scene.scene_id, reference, prediction.charts)
            predictions[scene.scene_id] = prediction
        self.network.train()
        return board.pooled(), predictions
