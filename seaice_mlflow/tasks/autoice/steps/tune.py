"""The tune step: an Optuna study over training options, each trial a child MLflow training run.

The parent run ("tune") logs the tune's options, then, over the whole study (this and earlier
invocations), ``best_val_combined``, the best parameters as ``best_<option>`` params, the trials
table (``trials.csv``) and the parameter-importance plot. Each trial is a ``train`` step started
inside the parent's run, so it is its child, with the trial's options as params; the median pruner
reads its per-epoch validation score, and a pruned trial's run ends KILLED, tagged
``seaice.tune.pruned``. See :mod:`seaice_mlflow.tasks.autoice.tuning` for the space syntax, the
study's key, how a killed tune resumes and how several tunes share a study.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import optuna
from matplotlib import pyplot

from seaice_mlflow.core.errors import ParameterError, SeaIceError
from seaice_mlflow.core.io import check_writable
from seaice_mlflow.core.trainer import EpochReport
from seaice_mlflow.tasks.autoice.config import TuneDefaults
from seaice_mlflow.tasks.autoice.steps.train import stderr_line, train
from seaice_mlflow.tasks.autoice.store import Store
from seaice_mlflow.tasks.autoice.train_config import TrainConfig
from seaice_mlflow.tasks.autoice.tuning import (
    FINISHED,
    GRACE_S,
    Dimension,
    StudyKey,
    check_space,
    finished_trials,
    open_storage,
    open_study,
    parse_fixed,
    parse_space,
    shown_url,
    storage_url,
    train_options,
    trial_table,
)
from seaice_mlflow.tracking.runs import resolve_tracking_uri, run_name, step_run, take_over

PRUNED_TAG, TRIAL_TAG = "seaice.tune.pruned", "seaice.tune.trial"


class TrialStopped(Exception):
    """The pruner stopped a trial after an epoch (raised through the training loop)."""


@dataclass
class TuneRun:
    run_id: str
    study_name: str
    storage: str
    finished: int  # finished trials of the study (complete or pruned)
    best_value: float | None
    best_params: dict[str, Any]


@dataclass
class Objective:
    """One trial: train with the sampled options; the best validation combined score is the value."""

    store: str
    out: Path
    space: tuple[Dimension, ...]
    fixed: dict[str, Any]
    device: str
    echo: Callable[[str], None]

    def config(self, trial: optuna.Trial) -> TrainConfig:
        sampled = {d.name: d.suggest(trial) for d in self.space}
        options = train_options(self.fixed, sampled)
        return TrainConfig(**options, store=self.store, out=str(self.out / f"trial-{trial.number:03d}"),
                           device=self.device)  # fmt: skip

    def __call__(self, trial: optuna.Trial) -> float:
        config = self.config(trial)

        def on_epoch(report: EpochReport) -> None:
            run_id = mlflow.active_run().info.run_id
            if "mlflow_run_id" not in trial.user_attrs:
                trial.set_user_attr("mlflow_run_id", run_id)
                mlflow.set_tag(TRIAL_TAG, str(trial.number))
            trial.report(report.metrics["val_combined"], report.epoch)
            if trial.should_prune():
                raise TrialStopped(f"pruned after epoch {report.epoch + 1}")

        self.echo(f"trial {trial.number}: {', '.join(f'{k}={v}' for k, v in trial.params.items())}")
        try:
            result = train(config, on_epoch=on_epoch, echo=self.echo)
        except TrialStopped as stopped:
            run_id = trial.user_attrs["mlflow_run_id"]
            client = mlflow.MlflowClient()
            client.set_tag(run_id, PRUNED_TAG, "true")
            client.set_terminated(run_id, "KILLED")
            self.echo(f"trial {trial.number}: {stopped}")
            raise optuna.TrialPruned(str(stopped)) from None
        self.echo(f"trial {trial.number}: best val_combined {result.best_val_combined}")
        return float(result.best_val_combined)


def check_store(store: str) -> Store:
    """The objective and the pruner need validation scenes."""
    opened = Store(store)
    if not opened.scenes("val"):
        raise ParameterError("store", f"{store} has no validation scenes; make it with `seaice preprocess "
                             "--val-scenes 1` or more, the trials are compared on them")  # fmt: skip
    return opened


def tune(store: str, options: TuneDefaults, echo: Callable[[str], None] = stderr_line) -> TuneRun:
    """Run the study until it has ``options.trials`` finished trials (or ``timeout``); everything is
    checked before the first trial trains."""
    space, fixed = parse_space(options.space), parse_fixed(options.fixed)
    train_options(fixed, {d.name: None for d in space})
    out = check_writable(options.out, "out")
    digest = check_store(store).digest
    TrainConfig(**fixed, store=store, out=str(out), device=options.device)  # a bad fixed value fails now
    check_space(space, fixed, store=store, out=str(out), device=options.device)
    if not options.storage:
        out.mkdir(parents=True, exist_ok=True)  # the default database may be there
    storage = options.storage or storage_url(resolve_tracking_uri(), out)
    key = StudyKey(digest, fixed, space)
    name = options.study_name or key.default_name(store)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(name, open_storage(storage), key, options.seed, options.prune_after)
    params = {**asdict(options), "store": store, "study_name": name, "storage": shown_url(storage)}
    with step_run("tune", params, name=run_name("tune", name, "on", Path(store).name)) as run:
        # a killed tune's run and its trial's train run; those of tunes still running go on
        take_over("tune", {k: params[k] for k in ("study_name", "storage")}, echo, exclusive=False)
        left = options.trials - finished_trials(study)
        if left > 0:
            objective = Objective(store, out, space, fixed, options.device, echo)
            enough = optuna.study.MaxTrialsCallback(options.trials, states=FINISHED)  # over every tune of the study
            try:
                study.optimize(objective, n_trials=left, timeout=options.timeout or None, callbacks=[enough])
            except optuna.exceptions.UpdateFinishedTrialError:
                raise SeaIceError(f"another `seaice tune` of study {name} marked this process's trial failed: its "
                                  f"heartbeat stopped for more than {GRACE_S} s (was the process suspended?); run "
                                  "the command again to go on") from None  # fmt: skip
        best_value, best_params = log_study(study)
        return TuneRun(run.info.run_id, name, storage, finished_trials(study), best_value, best_params)


def log_study(study: optuna.Study) -> tuple[float | None, dict[str, Any]]:
    """Best score and parameters, the trials table and the importance plot, on the active run."""
    rows = trial_table(study)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
    writer.writeheader()
    writer.writerows(rows)
    mlflow.log_text(buffer.getvalue(), "trials.csv")
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return None, {}
    best = study.best_trial
    mlflow.log_metric("best_val_combined", best.value)
    mlflow.log_params({f"best_{k}": v for k, v in best.params.items()})
    mlflow.set_tag("seaice.tune.best_run", best.user_attrs.get("mlflow_run_id", ""))
    if len(complete) >= 2 and len({tuple(sorted(t.params.items())) for t in complete}) >= 2:
        with warnings.catch_warnings():  # "experimental" since Optuna 2.2; equal importances with few trials
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message=".*importances will be equal.*")
            axes = optuna.visualization.matplotlib.plot_param_importances(study)
        mlflow.log_figure(axes.figure, "param_importances.png")
        pyplot.close(axes.figure)  # Optuna draws with pyplot
    return best.value, dict(best.params)
