"""Defaults of the task-agnostic options (tiling, device, tracking, registry, serving) and the
:func:`option` field that carries an option's default, help text and allowed values in one place.

Each task's commands define theirs the same way (for AutoICE, :mod:`seaice_mlflow.tasks.autoice.config`); the
click options are built from the fields (:func:`seaice_mlflow.cli.options.options_from`) and the
MLproject is checked against them. :func:`check_value` is the one check of a value against its allowed
values (finite, range, choices), with one wording for every command; :class:`CheckedOptions` applies it
to every field of an options dataclass when it is made. Integer ranges are also click's ``IntRange``;
float options stay plain floats on the command line, because ``nan`` passes click's ``FloatRange`` (it
fails every comparison): the check of the dataclass refuses them, naming the flag, before any run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from seaice_mlflow.core.errors import ParameterError


def option(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] = (),
    minimum: float | None = None,
    maximum: float | None = None,
    min_open: bool = False,
    applies: Callable[[Any], bool] | None = None,
) -> Any:
    """A command option: its default, its help text and its allowed values (``choices``, or a range
    ``minimum``..``maximum``, ``min_open``: above the minimum), in one place. The click options are
    built from these fields (:func:`seaice_mlflow.cli.options.options_from`); the MLproject is
    checked against them; :class:`CheckedOptions` checks the values. ``applies``: when the option
    acts at all, given all the options (e.g. ``--momentum`` with ``--optimizer sgd``; :func:`applicable`)."""
    limits = {"choices": choices, "minimum": minimum, "maximum": maximum, "min_open": min_open}
    return field(default=default, metadata={"help": help, **limits, "applies": applies})


def applicable(options: Any) -> dict[str, Any]:
    """The fields of the options dataclass instance ``options`` that act on this run: those without an
    ``applies`` rule and those whose rule holds. A run logs these as its params (the MLflow UI then
    shows what made the run) and the whole dataclass as its resolved config artifact."""
    return {
        item.name: getattr(options, item.name)
        for item in fields(options)
        if item.metadata.get("applies") is None or item.metadata["applies"](options)
    }


def check_value(
    name: str,
    value: Any,
    *,
    choices: Collection = (),
    minimum: float | None = None,
    maximum: float | None = None,
    min_open: bool = False,
) -> None:
    """A :class:`ParameterError` naming the option ``name`` when ``value`` is a float that is not finite
    (``nan`` passes every comparison; ``inf`` diverges at once), not among ``choices``, or outside the range."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ParameterError(name, f"must be a finite number, got {value}")
    if choices and value not in choices:
        raise ParameterError(name, f"{value!r} is not one of {', '.join(map(str, choices))}")
    above = minimum is None or (value > minimum if min_open else value >= minimum)
    if not (above and (maximum is None or value <= maximum)):
        raise ParameterError(name, f"must be {range_text(minimum, maximum, min_open)}, got {value}")


def range_text(minimum: float | None, maximum: float | None, min_open: bool = False) -> str:
    """``> 0``, ``>= 1``, ``<= 9``, ``between 0 and 1`` or ``above 0 and at most 1``."""
    if maximum is None:
        return f"{'>' if min_open else '>='} {minimum}"
    if minimum is None:
        return f"<= {maximum}"
    return f"above {minimum} and at most {maximum}" if min_open else f"between {minimum} and {maximum}"


def check_options(options: Any) -> None:
    """:func:`check_value` on every :func:`option` field of the dataclass instance ``options``."""
    for item in fields(options):
        if "help" in item.metadata:
            meta = item.metadata
            check_value(item.name, getattr(options, item.name), choices=meta["choices"], minimum=meta["minimum"],
                        maximum=meta["maximum"], min_open=meta["min_open"])  # fmt: skip


class CheckedOptions:
    """Base of an options dataclass whose values are checked when it is made (:func:`check_options`):
    the command line, the MLproject and the Python API refuse the same values with the same words."""

    def __post_init__(self) -> None:
        check_options(self)


DEVICES = ("auto", "cpu", "cuda")
#: Reference inputs of the attributions (:mod:`seaice_mlflow.core.attribution`, which imports torch).
Baseline = Literal["zero", "mean", "blur"]
BASELINES: tuple[Baseline, ...] = get_args(Baseline)
STAGES = ("Production", "Staging", "none")  # legacy registry stages mirrored from the alias
#: Task families of logged models (their ``seaice.task`` tag): SAR charts, photo masks, photo floe instances.
TaskFamily = Literal["autoice", "optical", "optical_floes"]
TASK_FAMILIES: tuple[TaskFamily, ...] = get_args(TaskFamily)
#: The MLflow experiment of each family's runs when none is chosen (``--experiment``, ``MLFLOW_EXPERIMENT_NAME``
#: or ``MLFLOW_EXPERIMENT_ID``): SAR charts in one, photo masks and floes in another, so that the UI lists one
#: family's runs together and each family's ``register`` ranks its own experiment.
DEFAULT_EXPERIMENTS: dict[TaskFamily, str] = {"autoice": "seaice", "optical": "seaice-optical",
                                              "optical_floes": "seaice-optical"}  # fmt: skip


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
