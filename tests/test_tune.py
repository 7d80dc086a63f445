"""`seaice tune`: the search space, trials as child runs, resuming a study (tiny CPU trainings)."""

from __future__ import annotations

import re

import mlflow
import optuna
import pytest
from click.testing import CliRunner

from seaice_mlflow.cli import cli
from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.tasks.autoice.tuning import Dimension, parse_fixed, parse_space, split_items, storage_url

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


@pytest.mark.slow
def test_trials_are_child_runs_and_a_rerun_or_a_killed_tune_runs_only_the_missing_trials(
    train_store, tmp_path, tracking
):
    runner = CliRunner()
    first = runner.invoke(cli, tune_args(train_store, tmp_path / "tune", 2))
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

    storage = storage_url(tracking, tmp_path / "tune")
    study = optuna.load_study(study_name=f"tune-{train_store.name}", storage=storage)
    study.ask()  # what a tune killed in its third trial leaves: a trial RUNNING in the study
    again = runner.invoke(cli, tune_args(train_store, tmp_path / "tune", 3))
    assert again.exit_code == 0, again.output
    assert "has 3 finished trial(s)" in again.output
    assert len(child_runs(tune_run_id(again.output))) == 1  # only the missing trial ran
    states = [t.state for t in optuna.load_study(study_name=f"tune-{train_store.name}", storage=storage).trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 1 and states.count(optuna.trial.TrialState.COMPLETE) == 3

    done = runner.invoke(cli, tune_args(train_store, tmp_path / "tune", 3))
    assert done.exit_code == 0 and child_runs(tune_run_id(done.output)) == []


def test_a_bad_value_fails_before_any_trial(train_store, tmp_path, tracking):
    runs = len(mlflow.search_runs(search_all_experiments=True))
    result = CliRunner().invoke(cli, tune_args(train_store, tmp_path / "tune", 2, "--space", "lr=1:0.1"))
    assert result.exit_code == 1 and "option --space: lr=1:0.1: need low < high" in result.output
    bad_fixed = tune_args(train_store, tmp_path / "tune", 2)
    bad_fixed[bad_fixed.index("--fixed") + 1] = "batch_size=0"
    result = CliRunner().invoke(cli, bad_fixed)
    assert result.exit_code == 1 and "option --batch-size: must be > 0" in result.output
    assert len(mlflow.search_runs(search_all_experiments=True)) == runs  # nothing was started
