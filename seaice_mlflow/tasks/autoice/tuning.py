"""Hyper-parameter search over the training options: the search space and the Optuna study.

A space is written ``name=low:high[:log]`` for a number (an integer range when the option is an
integer, log-uniform with ``:log``) or ``name=a|b|c`` for a choice, comma separated; every name is
a ``seaice train`` option (``lr=1e-5:1e-2:log,batch_size=8|16|32,unet_filters=8,8,16,16|16,32,64,64``:
an item starts at a comma followed by ``name=``, so values may hold commas). Options held fixed
for every trial are written the same way with one value each (``epochs=10,patch_size=128``).

The study lives in an Optuna database beside a sqlite tracking store (``optuna.db``), else in the
tune's ``--out`` folder: a tune that was killed resumes the study where it stopped (its trials
left running are marked failed and run again), and ``--trials`` counts the study's finished
trials (complete or pruned), so a re-run only runs the missing ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import optuna

from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.tasks.autoice.config import TRAIN

#: Training options a trial may not change: where the data and checkpoints are, the processes.
FIXED_BY_TUNE = ("store", "out", "resume", "nproc", "device")
#: A space or fixed-options item starts at the beginning or after a comma followed by ``name=``.
ITEM = re.compile(r"(?:^|,)\s*([a-z_]+)=")
DimensionKind = Literal["range", "log", "choice"]
#: Study states that count as finished trials.
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@dataclass(frozen=True)
class Dimension:
    """One tuned training option: a range (uniform or log-uniform) or a choice."""

    name: str
    kind: DimensionKind
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        """The value of this option in ``trial``."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if isinstance(self.low, int) and isinstance(self.high, int):
            return trial.suggest_int(self.name, self.low, self.high, log=self.kind == "log")
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.kind == "log")


def split_items(text: str, what: str) -> dict[str, str]:
    """``name=value,...`` (values may hold commas) -> {name: value}, names in order, each once."""
    text = text.strip()
    if not text:
        return {}
    starts = list(ITEM.finditer(text))
    if not starts or starts[0].start() != 0:
        raise ParameterError(what, f"{text!r}: write name=value items separated by commas")
    items: dict[str, str] = {}
    for match, following in zip(starts, [*starts[1:], None]):
        name = match.group(1)
        if name in items:
            raise ParameterError(what, f"{name} is given twice")
        items[name] = text[match.end() : following.start() if following else len(text)].strip()
    return items


def option_type(name: str, what: str) -> type:
    """The type of the train option ``name``; a clear error for names that are no train option."""
    known = {f.name for f in fields(TRAIN)}
    if name not in known:
        raise ParameterError(what, f"{name} is not a `seaice train` option")
    if name in FIXED_BY_TUNE:
        raise ParameterError(what, f"{name} is set by the command itself ({', '.join(FIXED_BY_TUNE)} are)")
    return type(getattr(TRAIN, name))


def cast(name: str, text: str, what: str) -> Any:
    """A value as the train option ``name`` takes it (numbers, true/false, strings)."""
    kind = option_type(name, what)
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ParameterError(what, f"{name}={text}: give true or false")
        return text.lower() == "true"
    try:
        return kind(text)
    except ValueError:
        raise ParameterError(what, f"{name}={text}: not a {kind.__name__}") from None


def parse_space(text: str) -> tuple[Dimension, ...]:
    """The search space ``text`` (module docstring); refused, naming ``--space``, when unusable."""
    dimensions = []
    for name, value in split_items(text, "space").items():
        kind = option_type(name, "space")
        if "|" in value:
            choices = tuple(cast(name, v.strip(), "space") for v in value.split("|"))
            dimensions.append(Dimension(name, "choice", choices=choices))
            continue
        parts = value.split(":")
        if kind not in (int, float) or len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
            raise ParameterError(
                "space", f"{name}={value}: give low:high or low:high:log for a number, or a|b|c for a choice"
            )
        low, high = (cast(name, p, "space") for p in parts[:2])
        log = len(parts) == 3
        if not low < high or (log and low <= 0) or not (math.isfinite(low) and math.isfinite(high)):
            raise ParameterError("space", f"{name}={value}: need low < high" + (" and low > 0 for :log" if log else ""))
        dimensions.append(Dimension(name, "log" if log else "range", low, high))
    if not dimensions:
        raise ParameterError("space", "give at least one option to tune, e.g. lr=1e-4:1e-2:log")
    return tuple(dimensions)


def parse_fixed(text: str) -> dict[str, Any]:
    """Train options held fixed for every trial (``name=value,...``), cast to their types."""
    return {name: cast(name, value, "fixed") for name, value in split_items(text, "fixed").items()}


def storage_url(tracking_uri: str, out: Path) -> str:
    """The study's database: ``optuna.db`` beside a sqlite tracking store, else in ``out``."""
    if tracking_uri.startswith("sqlite:///"):
        return f"sqlite:///{Path(tracking_uri.removeprefix('sqlite:///')).parent / 'optuna.db'}"
    return f"sqlite:///{out.resolve() / 'optuna.db'}"


def open_study(name: str, storage: str, seed: int, prune_after: int) -> optuna.Study:
    """The study ``name`` (created or resumed): maximise the best validation score, TPE sampler,
    median pruner on the per-epoch validation score. Trials a killed tune left running fail now."""
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=prune_after),
    )
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return study


def finished_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def trial_table(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial: number, state, best validation score, its MLflow run, its parameters."""
    return [
        {"trial": t.number, "state": t.state.name, "best_val_combined": t.value,
         "run_id": t.user_attrs.get("mlflow_run_id", ""), **t.params}
        for t in study.get_trials(deepcopy=False)
    ]  # fmt: skip


def train_options(fixed: Mapping[str, Any], sampled: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's training options: the fixed ones, then the sampled ones (a name in both is refused)."""
    both = sorted(set(fixed) & set(sampled))
    if both:
        raise ParameterError("fixed", f"{', '.join(both)} is tuned (--space) and fixed (--fixed) at once")
    return {**fixed, **sampled}
