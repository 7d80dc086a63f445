"""Training checkpoints: everything needed to continue exactly (weights, optimizer, scheduler,
AMP scaler, epoch, best score, history, random states)."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.core.io import atomic_path

LAST, BEST = "last.pt", "best.pt"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def random_state() -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_random_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict) -> Path:
    """Write a checkpoint atomically (a crash never leaves half a file)."""
    with atomic_path(path) as tmp:
        torch.save({**state, "random": random_state()}, tmp)
    return path


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and plain values only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise ParameterError("resume", f"{path} is not a readable checkpoint ({err})") from err


def resolve_resume(spec: str, workdir: Path) -> Path:
    """A checkpoint file from ``--resume``: a path, or an MLflow run id whose ``checkpoints/last.pt``
    is downloaded."""
    path = Path(spec)
    if path.is_file():
        return path
    if path.is_dir() and (path / LAST).is_file():
        return path / LAST
    if RUN_ID.match(spec):
        import mlflow

        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=spec, artifact_path=f"checkpoints/{LAST}", dst_path=str(workdir)
            )
        except mlflow.exceptions.MlflowException as err:
            raise ParameterError("resume", f"run {spec} has no checkpoints/{LAST} artifact ({err})") from err
        return Path(local)
    raise ParameterError("resume", f"{spec!r} is neither a checkpoint file, a folder with {LAST}, nor an MLflow run id")


def non_finite_weights(state: Mapping[str, Tensor]) -> list[str]:
    """Names of the floating-point tensors of a state dict holding nan or inf (a diverged model)."""
    return [
        name
        for name, value in state.items()
        if torch.is_floating_point(value) and not bool(torch.isfinite(value).all())
    ]
