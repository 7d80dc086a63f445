"""`seaice tune`: the search space, trials as child runs, resuming a study (tiny CPU trainings)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time

import mlflow
import optuna
import pytest
from click.testing import CliRunner

from seaice_mlflow.cli import cli
from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.tasks.autoice import tuning
from seaice_mlflow.tasks.autoice.tuning import Dimension, parse_fixed, parse_space, split_items, storage_url
from tests.conftest import run_preprocess

EXPERIMENT = "tune-test"
FIXED = "epochs=2,batches_per_epoch=2,batch_size=4,patch_size=64,unet_filters=8,8,16,16,workers=0,val_tile=64"


def test_space_and_fixed_options_parse_with_commas_inside_values():
    assert split_items("lr=1e-5:1e-2:log,unet_filters=8,8,16,16|16,32,64,64", "space") == {
        "lr": "1e-5:1e-2:log",
        "unet_filters": "8,8,16,16|16,32,64,64",
    }
    lr, batch, filters, epochs = parse_space(
        "lr=1e-5:1e-2:log, batch_size=8|16|32, unet_filters=8,8,16,16|16,32,64,64, epochs=2:6"
    )
    assert lr == Dimension("lr", "log", 1e-5, 1e-2)
    assert batch == Dimension("batch_size", "choice", choices=(8, 16, 32))
    assert filters.choices == ("8,8,16,16", "16,32,64,64")
    assert epochs == Dimension("epochs", "range", 2, 6)
    assert parse_fixed(FIXED + ",amp=false") == {
        "epochs": 2, "batches_per_epoch": 2, "batch_size": 4, "patch_size": 64, "unet_filters": "8,8,16,16",
        "workers": 0, "val_tile": 64, "amp": False,
    }  # fmt: skip


@pytest.mark.parametrize(
    "option, text, match",
    [
        ("space", "lr=0.1:0.01", "need low < high"),
        ("space", "lr=0:1:log", "low > 0"),
        ("space", "learning_rate=1e-4:1e-2", "learning_rate is not a `seaice train` option"),
        ("space", "store=a|b", "store is set by the command itself"),
        ("space", "model=unet:deeplabv3", "give low:high"),
        ("space", "batch_size=8|x", "batch_size=x: not a int"),
        ("space", "", "at least one option"),
        ("fixed", "epochs", "name=value"),
        ("fixed", "epochs=2,epochs=3", "epochs is given twice"),
        ("fixed", "amp=maybe", "give true or false"),
    ],
)
def test_bad_spaces_and_fixed_options_name_the_option(option, text, match):
    parse = parse_space if option == "space" else parse_fixed
    with pytest.raises(ParameterError, match=f"option --{option}: .*{match}"):
        parse(text)


def test_the_study_lives_beside_a_sqlite_tracking_store(tmp_path):
    assert storage_url(f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "out") == f"sqlite:///{tmp_path}/optuna.db"
    assert storage_url("http://127.0.0.1:5000", tmp_path / "out") == f"sqlite:///{tmp_path / 'out'}/optuna.db"


def tune_args(store, out, trials: int, *extra: str) -> list[str]:
    return ["tune", "--store", str(store), "--out", str(out), "--trials", str(trials), "--space", "lr=1e-3:1e-2:log",
            "--fixed", FIXED, "--device", "cpu", *extra]  # fmt: skip


def tune_run_id(output: str) -> str:
    return re.search(r"^run (\w+): study", output, re.M).group(1)


def child_runs(parent_id: str) -> list:
    parent = mlflow.get_run(parent_id)
    return mlflow.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'", output_format="list"
    )


def study_name(output: str) -> str:
    return re.search(r"^run \w+: study (\S+) has", output, re.M).group(1)


def finished(output: str) -> int:
    return int(re.search(r"has (\d+) finished trial", output).group(1))


@pytest.mark.slow
def test_trials_are_child_runs_a_rerun_or_a_killed_tune_runs_only_the_missing_trials_and_other_data_its_own_study(
    train_store, ready_dir, tmp_path, tracking, monkeypatch
):
    store = shutil.copytree(train_store, tmp_path / "a" / "store")
    runner = CliRunner()
    first = runner.invoke(cli, tune_args(store, tmp_path / "tune", 2))
    assert first.exit_code == 0, first.output
    parent_id = tune_run_id(first.output)
    parent = mlflow.get_run(parent_id)
    assert parent.data.tags["seaice.entry_point"] == "tune" and parent.info.status == "FINISHED"
    children = child_runs(parent_id)
    assert len(children) == 2 and {c.data.tags["seaice.entry_point"] for c in children} == {"train"}
    assert {c.data.tags["seaice.tune.trial"] for c in children} == {"0", "1"}
    best = next(c for c in children if c.info.run_id == parent.data.tags["seaice.tune.best_run"])
    assert parent.data.metrics["best_val_combined"] == best.data.metrics["best_val_combined"]
    assert best.data.metrics["best_val_combined"] == max(c.data.metrics["best_val_combined"] for c in children)
    assert float(parent.data.params["best_lr"]) == float(best.data.params["lr"])
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent_id)}
    assert {"trials.csv", "param_importances.png"} <= artifacts

    # What a tune SIGKILLed in its third trial leaves: a RUNNING trial whose heartbeat stopped
    # more than the grace period ago (shortened here). A trial with a fresh heartbeat is a live
    # process's: test_two_tunes_share_a_study_without_failing_each_others_trials.
    monkeypatch.setattr(tuning, "HEARTBEAT_S", 1)
    monkeypatch.setattr(tuning, "GRACE_S", 2)
    name, storage = study_name(first.output), storage_url(tracking, tmp_path / "tune")
    study = optuna.load_study(study_name=name, storage=storage)
    killed = study.ask()
    study._storage.record_heartbeat(killed._trial_id)
    time.sleep(3)
    again = runner.invoke(cli, tune_args(store, tmp_path / "tune", 3))
    assert again.exit_code == 0, again.output
    assert study_name(again.output) == name and finished(again.output) == 3
    assert len(child_runs(tune_run_id(again.output))) == 1  # only the missing trial ran
    states = [t.state for t in optuna.load_study(study_name=name, storage=storage).trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 1 and states.count(optuna.trial.TrialState.COMPLETE) == 3

    done = runner.invoke(cli, tune_args(store, tmp_path / "tune", 3))
    assert done.exit_code == 0 and child_runs(tune_run_id(done.output)) == []

    # Another store in a folder of the same name, with other data: its own study, not the first's
    # best trial reported as its own; resuming the first's study by name on it is refused.
    other = run_preprocess(ready_dir, tmp_path / "b" / "store", val_scenes=1, seed=1).store
    theirs = runner.invoke(cli, tune_args(other, tmp_path / "tune", 1))
    assert theirs.exit_code == 0, theirs.output
    assert study_name(theirs.output) != name and finished(theirs.output) == 1
    assert len(child_runs(tune_run_id(theirs.output))) == 1
    runs = len(mlflow.search_runs(search_all_experiments=True))
    refused = runner.invoke(cli, tune_args(other, tmp_path / "tune", 4, "--study-name", name))
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert f"option --study-name: study {name} was tuned on other data" in refused.output
    assert len(mlflow.search_runs(search_all_experiments=True)) == runs


#: A first tune that holds its trial 0 open (its heartbeat beating) until the file argv[1] exists.
HELD_TUNE = """
import pathlib, sys, time
from seaice_mlflow.tasks.autoice.config import TuneDefaults
from seaice_mlflow.tasks.autoice.steps.tune import tune

go = pathlib.Path(sys.argv[1])

def echo(line):
    print(line, file=sys.stderr, flush=True)
    while line.startswith("trial 0:") and not go.exists():
        time.sleep(0.2)

tune(sys.argv[2], TuneDefaults(out=sys.argv[3], trials=1, space="lr=1e-3:1e-2:log", fixed=sys.argv[4], device="cpu",
                               study_name="shared", storage=sys.argv[5]), echo=echo)
"""


@pytest.mark.slow
def test_two_tunes_share_a_study_without_failing_each_others_trials(train_store, tmp_path, tracking):
    """A second tune opens the study while the first one's trial runs: it must leave that trial
    alone (its heartbeat is fresh), and both finish."""
    storage, go = f"sqlite:///{tmp_path / 'optuna.db'}", tmp_path / "go"
    out = str(tmp_path / "tune")
    first = subprocess.Popen([sys.executable, "-c", HELD_TUNE, str(go), str(train_store), out, FIXED, storage],
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not running_trials(storage, "shared"):
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()[1][-3000:]
            time.sleep(0.5)
        args = tune_args(train_store, out, 1, "--study-name", "shared", "--storage", storage)
        second = subprocess.run([sys.executable, "-m", "seaice_mlflow", *args], capture_output=True, text=True,
                                timeout=600)  # fmt: skip
        go.touch()
        err = first.communicate(timeout=600)[1]
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 0, second.stderr[-3000:]
    assert first.returncode == 0, err[-3000:]
    assert "Traceback" not in err + second.stderr
    trials = optuna.load_study(study_name="shared", storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert trials[1].datetime_complete < trials[0].datetime_complete  # the second ran inside the first


def running_trials(storage: str, name: str) -> list:
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:  # not created yet
        return []
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--space", "lr=1:0.1", "option --space: lr=1:0.1: need low < high"),
        ("--fixed", "batch_size=0", "option --batch-size: must be > 0"),
        ("--space", "lr=-1:0.01", "option --space: lr=-1.0: --lr must be > 0, got -1.0"),
        ("--space", "augment=none|no", "option --space: augment=no: --augment unknown augmentation(s) no"),
        ("--space", "lr=1e-3:1e-2,model=unet|resnet18,land=include|exclude",
         "option --space: model=resnet18, land=exclude: --land filters the pixels"),
        ("--storage", "sqlite:///{tmp}/missing/optuna.db", "option --storage: the folder {tmp}/missing does not exist"),
        ("--storage", "foo://host/optuna", "option --storage: foo://host/optuna: unknown database kind 'foo'"),
        ("--storage", "postgresql://user@localhost/optuna", "option --storage: postgresql://user@localhost/optuna: "
         "its driver is not installed"),
        ("--storage", "optuna.db", "option --storage: 'optuna.db' is not a database URL"),
    ],
)  # fmt: skip
def test_a_bad_value_fails_before_any_trial(train_store, tmp_path, tracking, option, value, message):
    runs = len(mlflow.search_runs(search_all_experiments=True))
    args = tune_args(train_store, tmp_path / "tune", 2)
    value, message = value.format(tmp=tmp_path), message.format(tmp=tmp_path)
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert len(mlflow.search_runs(search_all_experiments=True)) == runs  # nothing was started
