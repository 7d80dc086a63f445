"""The training loop, for any task: batches, multi-task loss, validation, checkpoints, early stopping.

Each epoch trains ``batches_per_epoch`` batches, calls the task's validation (when it has one),
steps the schedule, writes ``best.pt`` when the combined score improved and then ``last.pt`` (in
that order: a kill between the two leaves a ``last.pt`` whose best epoch is the one in
``best.pt``, or older, so a resume from it is exact), and stops early after ``early_stopping``
epochs without improvement. A non-finite loss or weight stops training with
:class:`TrainingDiverged` before anything non-finite is written. Under ``torchrun`` it trains
data parallel; only rank 0 validates, writes checkpoints and reports.

The loop is handed everything it runs (:class:`TrainingParts`): the task builds the network,
loss, optimiser, schedule, loader and validation (for AutoICE,
:mod:`seaice_mlflow.tasks.autoice.training`). MLflow logging lives in the tracking layer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from seaice_mlflow.core.checkpoint import (
    BEST,
    LAST,
    load_checkpoint,
    non_finite_weights,
    restore_random_state,
    save_checkpoint,
)
from seaice_mlflow.core.distributed import Distributed
from seaice_mlflow.core.errors import SeaIceError
from seaice_mlflow.core.progress import progress_bar

Scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts | torch.optim.lr_scheduler.ReduceLROnPlateau


class TrainingDiverged(SeaIceError):
    """The loss or the weights became nan or inf; nothing of the diverged model was written."""


#: ``objective(model, image, batch) -> (total loss, {name: loss})``: a network's own losses.
Objective = Callable[[nn.Module, Tensor, Mapping[str, Any]], tuple[Tensor, dict[str, Tensor]]]


class BatchLoader(Protocol):
    """Training batches: dicts with ``image`` (B, C, H, W) float32 and one target (B, H, W) per head."""

    def epoch(
        self, epoch: int, batches: int, skip: int = 0, rank: int = 0, world: int = 1
    ) -> Iterable[Mapping[str, Tensor]]: ...


class ValidationScores(Protocol):
    """What a task's validation returns (e.g. :class:`~seaice_mlflow.core.metrics.Scores`): the
    combined score the best epoch is kept by, and the scores as MLflow metrics."""

    @property
    def combined(self) -> float: ...

    def metrics(self, prefix: str) -> dict[str, float]: ...


@dataclass(frozen=True)
class LoopSettings:
    """How long and how the loop trains (the task's options, as the loop needs them)."""

    out: Path  # checkpoints folder
    epochs: int
    batches_per_epoch: int
    batch_size: int
    early_stopping: int = 0  # epochs without improvement; 0 never stops early
    grad_clip: float = 0.0
    amp: bool = True  # mixed precision on GPU
    lr: float = 1e-3  # named in the message of a diverged training
    time_limit_s: float = 0.0  # stop after the epoch that ends past this many seconds of this fit; 0: none


@dataclass
class TrainingParts:
    """What the task builds for the loop.

    ``loss(outputs, targets)`` returns (total, {head: loss}); ``validate()`` scores the current
    network on held-out data (None: no validation data, the last epoch is the best);
    ``checkpoint_extras()`` adds what rebuilds the model (recipe, config) to every checkpoint.
    ``objective(model, image, batch)``, when given, is for a network that computes its own losses
    from the batch (e.g. torchvision's detection models): it returns (total, {head: loss}) in place
    of ``loss(model(image), targets)``, and ``heads`` name its losses.
    """

    network: nn.Module
    loss: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Scheduler
    loader: BatchLoader
    heads: tuple[str, ...]
    validate: Callable[[], ValidationScores] | None = None
    checkpoint_extras: Callable[[], dict[str, Any]] = dict
    objective: Objective | None = None


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
    """The loop over the parts a task built (:class:`TrainingParts`)."""

    def __init__(
        self, parts: TrainingParts, settings: LoopSettings, device: torch.device, dist: Distributed = Distributed()
    ):
        self.parts, self.settings, self.device, self.dist = parts, settings, device, dist
        self.network = parts.network
        self.model = DistributedDataParallel(self.network) if dist.enabled else self.network
        self.amp = settings.amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.state = TrainingState()
        self.out = Path(settings.out)
        self.run_id: str | None = None  # the MLflow run the checkpoints belong to (set by the tracking layer)

    # --- checkpoints -----------------------------------------------------------------------

    def checkpoint_state(self) -> dict:
        parts = self.parts
        return {
            "model": self.network.state_dict(),
            "optimizer": parts.optimizer.state_dict(),
            "scheduler": parts.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "state": self.state.__dict__,
            **parts.checkpoint_extras(),
            "run_id": self.run_id,
        }

    def resume(self, path: Path, accept: Callable[[Path, dict], None] | None = None) -> dict:
        """Continue from a checkpoint exactly where it stopped; returns the checkpoint.

        ``accept(path, checkpoint)`` raises when the checkpoint belongs to another experiment
        (other options, other data); nothing is loaded then.
        """
        checkpoint = load_checkpoint(path)
        if accept is not None:
            accept(path, checkpoint)
        self.network.load_state_dict(checkpoint["model"])
        self.parts.optimizer.load_state_dict(checkpoint["optimizer"])
        self.parts.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.state = TrainingState(**checkpoint["state"])
        restore_random_state(checkpoint["random"])
        return checkpoint

    # --- the loop --------------------------------------------------------------------------

    def fit(self, on_epoch: Callable[[EpochReport], None] | None = None) -> TrainingState:
        """Train until ``epochs``, early stopping or the time limit; returns the final state."""
        validate, scheduler = self.parts.validate, self.parts.scheduler
        fit_started = time.perf_counter()
        while self.state.epoch < self.settings.epochs:
            epoch = self.state.epoch
            started = time.perf_counter()
            metrics = self.train_epoch(epoch)
            report = EpochReport(epoch, metrics, improved=False)
            if self.dist.main:
                if validate is not None:
                    scores = validate()
                    metrics.update(scores.metrics("val"))
                    score = scores.combined
                else:  # no validation data: the last epoch is the best
                    score = float(epoch)
                report.improved = score > self.state.best
                if report.improved:
                    self.state.best, self.state.best_epoch, self.state.since_best = score, epoch, 0
                else:
                    self.state.since_best += 1
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(self.dist.broadcast(metrics.get("val_combined", -float(epoch))))
            self.state.epoch = epoch + 1
            if self.dist.main:
                self.state.history.append({"epoch": epoch, **metrics})
                if report.improved:  # best first: see the module docstring
                    save_checkpoint(self.out / BEST, self.checkpoint_state())
                report.checkpoint = save_checkpoint(self.out / LAST, self.checkpoint_state())
                report.seconds = time.perf_counter() - started
                if on_epoch is not None:
                    on_epoch(report)
            patience, limit = self.settings.early_stopping, self.settings.time_limit_s
            stop = self.dist.main and validate is not None and patience and self.state.since_best >= patience
            stop = stop or (self.dist.main and limit and time.perf_counter() - fit_started >= limit)
            if self.dist.broadcast(float(stop)):
                break
        return self.state

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch of ``batches_per_epoch`` batches; mean losses, learning rate and patches/s."""
        self.model.train()
        cfg, parts = self.settings, self.parts
        totals = {"train_loss": 0.0, **{f"train_loss_{c}": 0.0 for c in parts.heads}}
        start = time.perf_counter()
        batches = parts.loader.epoch(epoch, cfg.batches_per_epoch, rank=self.dist.rank, world=self.dist.world)
        bar = progress_bar(
            batches,
            total=cfg.batches_per_epoch,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            unit="batch",
            enabled=self.dist.main,
            leave=False,
        )
        for step, batch in enumerate(bar):
            # channels_last: the NHWC convolutions are ~1.6x faster on CPU (bench_train.py), and suit AMP
            image = batch["image"].to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            if parts.objective is not None:  # the network's own losses (it reads its targets from the batch)
                with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
                    loss, losses = parts.objective(self.model, image, batch)
            else:
                targets = {c: batch[c].to(self.device, non_blocking=True) for c in parts.heads}
                with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
                    outputs = self.model(image)
                loss, losses = parts.loss({c: o.float() for c, o in outputs.items()}, targets)
            value = float(loss.item())  # the one device sync of the step
            if not math.isfinite(value):
                self.diverged(epoch, f"the loss of batch {step + 1} is {value}")
            parts.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.grad_clip:
                self.scaler.unscale_(parts.optimizer)
                torch.nn.utils.clip_grad_norm_(self.network.parameters(), cfg.grad_clip)
            self.scaler.step(parts.optimizer)
            self.scaler.update()
            if isinstance(parts.scheduler, torch.optim.lr_scheduler.CosineAnnealingWarmRestarts):
                parts.scheduler.step(epoch + (step + 1) / cfg.batches_per_epoch)
            totals["train_loss"] += value
            for chart, part in losses.items():
                totals[f"train_loss_{chart}"] += float(part.item())
            elapsed = time.perf_counter() - start
            bar.set_postfix(
                loss=f"{totals['train_loss'] / (step + 1):.4f}",
                patches_s=f"{(step + 1) * cfg.batch_size * self.dist.world / elapsed:.1f}",
            )
        elapsed = time.perf_counter() - start
        broken = non_finite_weights(self.network.state_dict())
        if broken:
            self.diverged(epoch, f"{len(broken)} weight tensors are not finite (e.g. {broken[0]})")
        metrics = {k: self.dist.mean(v / cfg.batches_per_epoch) for k, v in totals.items()}
        metrics["lr"] = parts.optimizer.param_groups[0]["lr"]
        metrics["patches_per_s"] = cfg.batches_per_epoch * cfg.batch_size * self.dist.world / elapsed
        return metrics

    def diverged(self, epoch: int, what: str) -> None:
        """Stop: raise :class:`TrainingDiverged` saying what went wrong and what is left."""
        kept = (
            f"{self.out / LAST} holds epoch {self.state.epoch} (finite)"
            if self.state.epoch
            else "no checkpoint was written"
        )
        raise TrainingDiverged(
            f"training diverged in epoch {epoch + 1}: {what}; {kept}. Train again with a lower "
            f"--lr (now {self.settings.lr:g}) or a --grad-clip (now {self.settings.grad_clip:g})"
        )
