"""Hyper-parameter search over the training options: the search space and the Optuna study.

A space is written ``name=low:high[:log]`` for a number (an integer range when the option is an
integer, log-uniform with ``:log``) or ``name=a|b|c`` for a choice, comma separated; every name is
a ``seaice train`` option (``lr=1e-5:1e-2:log,batch_size=8|16|32,unet_filters=8,8,16,16|16,32,64,64``:
an item starts at a comma followed by ``name=``, so values may hold commas). Options held fixed
for every trial are written the same way with one value each (``epochs=10,patch_size=128``).

Every value of the space (each choice and both ends of each range) is checked as a trial would
train with it, alone and paired with each value of the other options, before the first trial:
a bad value would otherwise be found only when a trial draws it, after others have trained. The
cross-option rules of the training options are between two options (a patch classifier and a
pixel filter), so pairs find them; the pairs of a space of a few options take milliseconds.

The study lives in an Optuna database beside a sqlite tracking store (``optuna.db``), else in the
tune's ``--out`` folder, or at ``--storage`` (any URL SQLAlchemy opens, checked first: a missing
folder, an unknown kind or a driver that is not installed is one line naming ``--storage``). Its
trials are comparable only on one question, so the study is keyed: the default name holds the
store's content digest, the space and the fixed options (``tune-<store folder>-<8 hex>``: two
stores in folders of the same name get their own studies), and a study records the digest and the
fixed options it was made with: resuming it by ``--study-name`` on other data or with other fixed
options is refused (a changed space is Optuna's business: it samples the new one).

A tune that was killed resumes the study where it stopped, and ``--trials`` counts the study's
finished trials (complete or pruned) over every process, so a re-run only runs the missing ones
and several tunes may share a study (``optuna.study.MaxTrialsCallback``). Which trials a killed
tune left running is told by Optuna's heartbeat (``RDBStorage(heartbeat_interval, grace_period)``):
each running trial writes one every :data:`HEARTBEAT_S` seconds, and a trial whose heartbeat is
older than :data:`GRACE_S` is marked failed (``fail_stale_trials``, when a tune opens the study and
before each trial) and run again; a live process's trial is left alone (before, every running
trial was failed at opening, and the tune running it crashed). The grace is five heartbeats: a
process suspended longer loses its trial and stops with one line. A trial a killed tune left
without any heartbeat (made by a version before the heartbeat, or killed within its first
milliseconds) stays RUNNING: it is not counted as finished, so it costs nothing but a table row.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import optuna
import sqlalchemy

from seaice_mlflow.core.errors import ParameterError, first_line, option_name
from seaice_mlflow.tasks.autoice.config import TRAIN
from seaice_mlflow.tasks.autoice.train_config import TrainConfig

#: Training options a trial may not change: where the data and checkpoints are, the processes.
FIXED_BY_TUNE = ("store", "out", "resume", "nproc", "device")
#: A space or fixed-options item starts at the beginning or after a comma followed by ``name=``.
ITEM = re.compile(r"(?:^|,)\s*([a-z_]+)=")
DimensionKind = Literal["range", "log", "choice"]
#: Study states that count as finished trials.
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
#: Seconds between a running trial's heartbeats, and the age of the last one after which the trial
#: is taken as left by a killed tune (module docstring).
HEARTBEAT_S, GRACE_S = 60, 300
#: The study's user attributes that record what its trials were scored on.
DATA_ATTR, FIXED_ATTR = "seaice.store_digest", "seaice.fixed"


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

    @property
    def extremes(self) -> tuple[Any, ...]:
        """The values a check tries: every choice, or both ends of the range."""
        return self.choices if self.kind == "choice" else (self.low, self.high)


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


def check_space(space: tuple[Dimension, ...], fixed: Mapping[str, Any], **where: str) -> None:
    """Train with every value of ``space`` alone and paired with each value of another option (the
    others fixed or default) as a trial would (``where``: store, out, device); the first value a
    trial could not train with is a :class:`ParameterError` naming ``--space`` and the value(s)."""
    values = [[(d.name, v) for v in d.extremes] for d in space]
    alone = [(value,) for options in values for value in options]
    pairs = [pair for first, second in itertools.combinations(values, 2) for pair in itertools.product(first, second)]
    for drawn in alone + pairs:
        try:
            TrainConfig(**train_options(fixed, dict(drawn)), **where)
        except ParameterError as err:
            text = ", ".join(f"{name}={value}" for name, value in drawn)
            raise ParameterError("space", f"{text}: {option_name(err.name)} {err.problem}") from None


def storage_url(tracking_uri: str, out: Path) -> str:
    """The study's database: ``optuna.db`` beside a sqlite tracking store, else in ``out``."""
    if tracking_uri.startswith("sqlite:///"):
        return f"sqlite:///{Path(tracking_uri.removeprefix('sqlite:///')).parent / 'optuna.db'}"
    return f"sqlite:///{out.resolve() / 'optuna.db'}"


def shown_url(url: str) -> str:
    """``url`` with its password (if any) hidden, as messages and params show it."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """The Optuna database at ``url`` with trial heartbeats; what is wrong with the URL (not a URL,
    an unknown database kind, a driver that is not installed, a missing folder, a database that
    does not open) is one :class:`ParameterError` naming ``--storage``."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise ParameterError("storage", f"{url!r} is not a database URL; give e.g. sqlite:////absolute/path/optuna.db "
                             "or postgresql://user@host/database") from None  # fmt: skip
    shown = shown_url(url)
    try:
        dialect = parsed.get_dialect()
    except sqlalchemy.exc.NoSuchModuleError:
        raise ParameterError("storage", f"{shown}: unknown database kind {parsed.get_backend_name()!r}; give a "
                             "sqlite://, postgresql:// or mysql:// URL") from None  # fmt: skip
    try:
        dialect.import_dbapi()
    except ImportError as err:
        raise ParameterError("storage", f"{shown}: its driver is not installed ({first_line(err)}); install it in "
                             "this environment or give a sqlite:// URL") from None  # fmt: skip
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).expanduser().absolute().parent
        if not folder.is_dir():
            raise ParameterError("storage", f"the folder {folder} does not exist; make it, or give a database file "
                                 "in an existing folder")  # fmt: skip
    try:
        with warnings.catch_warnings():  # the heartbeat is "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
    except (sqlalchemy.exc.SQLAlchemyError, RuntimeError) as err:  # cannot connect; a schema Optuna cannot read
        raise ParameterError("storage", f"{shown}: {first_line(getattr(err, 'orig', None) or err)}") from None


@dataclass(frozen=True)
class StudyKey:
    """What the trials of a study are compared on: the store's content digest and the options every
    trial trains with (``fixed``); the space too in the default study name."""

    store_digest: str
    fixed: Mapping[str, Any]
    space: tuple[Dimension, ...]

    def default_name(self, store: str) -> str:
        """``tune-<store folder>-<8 hex of the key>``."""
        key = {"store": self.store_digest, "fixed": self.fixed, "space": [asdict(d) for d in self.space]}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:8]
        return f"tune-{Path(store).resolve().name}-{digest}"

    @property
    def attrs(self) -> dict[str, str]:
        return {DATA_ATTR: self.store_digest, FIXED_ATTR: json.dumps(self.fixed, sort_keys=True, default=str)}


def check_key(study: optuna.Study, key: StudyKey) -> None:
    """Refuse to resume ``study`` on other data or with other fixed options; record the key of a
    new study (or of one made before studies recorded it)."""
    recorded = study.user_attrs
    if DATA_ATTR not in recorded:
        for name, value in key.attrs.items():
            study.set_user_attr(name, value)
        return
    if recorded[DATA_ATTR] != key.store_digest:
        raise ParameterError("study_name", f"study {study.study_name} was tuned on other data (a store of digest "
                             f"{recorded[DATA_ATTR][:12]}, this one is {key.store_digest[:12]}): its trials are not "
                             "comparable; give another --study-name, or none for this store's own study")  # fmt: skip
    if recorded.get(FIXED_ATTR) != key.attrs[FIXED_ATTR]:
        fixed = ",".join(f"{k}={v}" for k, v in json.loads(recorded[FIXED_ATTR]).items()) or "(none)"
        raise ParameterError("study_name", f"study {study.study_name} trains its trials with --fixed {fixed}; give "
                             "the same --fixed, or another --study-name")  # fmt: skip


def open_study(
    name: str, storage: optuna.storages.RDBStorage, key: StudyKey, seed: int, prune_after: int
) -> optuna.Study:
    """The study ``name`` (created or resumed, :func:`check_key`): maximise the best validation
    score, TPE sampler, median pruner on the per-epoch validation score. Trials a killed tune left
    running (heartbeat older than :data:`GRACE_S`) fail now; those of live tunes go on."""
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=prune_after),
    )
    check_key(study, key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
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
