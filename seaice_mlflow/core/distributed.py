"""Distributed data parallel training under ``torchrun`` (nccl on GPUs, gloo on CPU)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job; a single process is rank 0 of 1."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Only the main process logs to MLflow and writes checkpoints."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast(self, value: float) -> float:
        """The main process's ``value`` on every rank."""
        if not self.enabled:
            return value
        tensor = torch.tensor([float(value)], dtype=torch.float64)
        dist.broadcast(tensor, src=0)
        return float(tensor.item())

    def mean(self, value: float) -> float:
        """Mean of ``value`` over ranks."""
        if not self.enabled:
            return value
        tensor = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world


def setup(device: torch.device) -> Distributed:
    """Join the process group that ``torchrun`` describes in the environment (if any)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    info = Distributed(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return info


def teardown(info: Distributed) -> None:
    """Leave the process group together: every rank waits for the others (rank 0 logs the model
    after the loop) before destroying it, as torch asks; a rank tearing its gloo group down while
    another still works was seen to abort (SIGABRT) under load."""
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ
