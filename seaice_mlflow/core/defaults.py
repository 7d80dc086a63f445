"""Defaults of the task-agnostic options (tiling, device, tracking, registry, serving) and the
:func:`option` field that carries an option's default, help text and allowed values in one place.

Each task's commands define theirs the same way (for AutoICE, :mod:`seaice_mlflow.tasks.autoice.config`); the
click options are built from the fields (:func:`seaice_mlflow.cli.options.options_from`) and the
MLproject is checked against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def option(
    default: Any, help: str, *, choices: tuple[str, ...] = (), minimum: int | None = None, maximum: int | None = None
) -> Any:
    """A command option: its default, its help text and its allowed values, in one place. The
    click options are built from these fields (:func:`seaice_mlflow.cli.options.options_from`);
    the MLproject is checked against them."""
    return field(default=default, metadata={"help": help, "choices": choices, "minimum": minimum, "maximum": maximum})


DEVICES = ("auto", "cpu", "cuda")
STAGES = ("Production", "Staging", "none")  # legacy registry stages mirrored from the alias
#: Task families of logged models (their ``seaice.task`` tag): SAR charts, photo masks, photo floe instances.
TASK_FAMILIES = ("autoice", "optical", "optical_floes")


@dataclass(frozen=True)
class TilingDefaults:
    """Full-scene inference tiles (working-grid pixels; :class:`~seaice_mlflow.core.engine.TileOptions`).

    768 px tiles with 64 px overlap in batches of 2 were the fastest on the 2-core CPU
    (benchmarks/bench_inference.py: 512 x 4 computes 31 % more pixels in overlaps, 1024 x 1 was
    slower per pixel); a batch is about 1.2 Mpixel, also a good size for a GPU.
    """

    tile: int = option(
        768,
        "Tile size in working-grid pixels (rounded down to the network's stride); memory "
        "grows with tile x tile x batch, not with the scene.",
        minimum=1,
    )
    overlap: int = option(64, "Overlap of neighbouring tiles (blended; at most half a tile).", minimum=0)
    batch: int = option(2, "Tiles per forward pass.", minimum=1)


TILING = TilingDefaults()


@dataclass(frozen=True)
class TrackingDefaults:
    """How commands deal with an HTTP tracking server (MLflow's own retries wait ~4 min per call)."""

    check_timeout_s: int = 5  # the check that the server answers, before any work
    training_retries: int = 3  # any call during training (~7 s of backoff; MLflow's 7 take ~4 min)
    epoch_retries: int = 1  # per-epoch logging in training: fail fast, keep the metrics, train on
    epoch_timeout_s: int = 10
    #: how long a training that has finished waits for a server that is away before it stops with
    #: the --resume line (environment variable SEAICE_TRACKING_WAIT, seconds)
    outage_wait_s: float = 900.0


TRACKING = TrackingDefaults()


@dataclass(frozen=True)
class InferenceDefaults(TilingDefaults):
    """Full-scene inference of a command: tiling and device."""

    device: str = option("auto", "auto: the GPU when there is one.", choices=DEVICES)


@dataclass(frozen=True)
class RegisterDefaults:
    """``seaice register``."""

    experiment: str = option("seaice", "Experiment whose FINISHED runs are ranked.")
    model_name: str = option("seaice-charts", "Registered model name.")
    metric: str = option(
        "auto",
        "Ranking metric; auto: test_combined when every model compared has one "
        "(evaluate runs not on its training scenes), else best_val_combined.",
    )
    alias: str = option("champion", "Alias of the best version.")
    stage: str = option("Production", "Legacy stage mirrored from the alias (none: aliases only).", choices=STAGES)
    force: bool = option(False, "Promote the best run's model even if it does not beat the current champion.")
    task: str = option("autoice", "Task family of the models ranked: autoice (SAR charts), optical (photo masks) "
                       "or optical_floes (floe instances).", choices=TASK_FAMILIES)  # fmt: skip


@dataclass(frozen=True)
class ServeDefaults:
    """``seaice serve`` (MLflow's scoring server)."""

    host: str = option("127.0.0.1", "Address to listen on (0.0.0.0: every one).")
    port: int = option(5001, "Port (5000 is the tracking UI's).", minimum=1, maximum=65535)
    workers: int = option(1, "Server processes (each holds the model).", minimum=1)
