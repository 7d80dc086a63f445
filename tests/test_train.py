"""Training end to end against a temporary sqlite MLflow store: logging, pyfunc model, resume, DDP."""

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from seaice_mlflow.cli import cli
from seaice_mlflow.core.checkpoint import BEST, LAST, load_checkpoint
from seaice_mlflow.core.errors import ParameterError, SeaIceError
from seaice_mlflow.models import ModelSpec, UNetOptions, build_model
from seaice_mlflow.tasks.autoice.charts import AUTOICE
from seaice_mlflow.tasks.autoice.config import TRAIN
from seaice_mlflow.tasks.autoice.files.variables import SCENE_VARIABLES
from seaice_mlflow.tasks.autoice.pyfunc import log_chart_model
from seaice_mlflow.tasks.autoice.recipe import Recipe
from seaice_mlflow.tasks.autoice.store import Store
from seaice_mlflow.tasks.autoice.train_config import TrainConfig
from seaice_mlflow.tasks.autoice.training import (
    ChartTraining,
    class_census,
    configure_loader,
    configure_loss,
    configure_network,
    configure_optimizer,
    configure_recipe,
    configure_scheduler,
)
from tests.tiny_model import TINY_TRAIN, tiny_store

ROOT = Path(__file__).resolve().parent.parent

TINY = ["--epochs", "2", *TINY_TRAIN]


@pytest.fixture
def tracking(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "train-test")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    mlflow.set_tracking_uri(uri)
    return uri


def test_train_logs_everything_and_a_loadable_model(train_store, tmp_path, tracking):
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--store",
            str(train_store),
            "--out",
            str(tmp_path / "ckpt"),
            *TINY,
            "--class-weights",
            "balanced:SOD",
        ],
    )
    assert result.exit_code == 0, result.output
    [run] = mlflow.search_runs(experiment_names=["train-test"], output_format="list")
    assert run.info.status == "FINISHED" and run.info.run_name == f"train unet {train_store.name}"
    # the options that act on a U-Net trained with AdamW, not those of other architectures, optimisers or schedules
    inapplicable = {"deeplab_depth", "encoder", "pretrained", "patch_stride", "patch_charts", "patch_purity"}
    inapplicable |= {"momentum", "season_table", "resume"}
    assert set(run.data.params) & set(TrainConfig.option_names()) == set(TrainConfig.option_names()) - inapplicable
    config = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/config.json")  # the resolved config: everything
    assert set(config) == set(TrainConfig.option_names()) and config["momentum"] == 0.9
    assert run.data.params["lr"] == "0.001" and run.data.tags["seaice.store_digest"]
    assert run.data.params["class_weights"] == "balanced:SOD"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == [0, 1]
    for name in (
        "val_SIC_r2",
        "val_SOD_f1",
        "val_FLOE_f1",
        "val_combined",
        "lr",
        "patches_per_s",
        "train_loss_SOD",
        "best_val_combined",
        "best_epoch",
    ):
        assert name in run.data.metrics, name
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"config.json", "recipe.json", "learning_curves.png", "checkpoints", "quicklooks"} <= artifacts
    [logged] = mlflow.search_logged_models(filter_string=f"source_run_id = '{run.info.run_id}'", output_format="list")

    model = mlflow.pyfunc.load_model(logged.model_uri, model_config={"device": "cpu", "tile": 32})
    channels = model.metadata.get_input_schema().inputs[0].shape[1]
    out = model.predict(np.random.default_rng(0).normal(size=(1, channels, 37, 53)).astype(np.float32))
    assert set(out) == {"SIC", "SOD", "FLOE"}
    assert out["SIC"].shape == (1, 37, 53) and out["SIC"].dtype == np.uint8 and out["SIC"].max() <= 10
    with pytest.raises(mlflow.exceptions.MlflowException):  # the signature rejects other channel counts
        model.predict(np.zeros((1, channels - 1, 16, 16), np.float32))


def test_resume_continues_exactly(train_store, tmp_path):
    straight = TrainConfig(
        store=str(train_store),
        out=str(tmp_path / "a"),
        epochs=2,
        batches_per_epoch=2,
        batch_size=2,
        patch_size=48,
        unet_filters="4,4,8,8",
        workers=0,
        val_tile=64,
        device="cpu",
    )
    ChartTraining.build(straight).fit()
    first_half = TrainConfig(**{**straight.as_params(), "out": str(tmp_path / "b"), "epochs": 1})
    ChartTraining.build(first_half).fit()
    resumed = ChartTraining.build(TrainConfig(**{**straight.as_params(), "out": str(tmp_path / "b")}))
    resumed.resume(tmp_path / "b" / LAST)
    resumed.fit()
    a = load_checkpoint(tmp_path / "a" / LAST)["model"]
    b = load_checkpoint(tmp_path / "b" / LAST)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "b" / BEST).is_file()


def test_max_minutes_stops_after_the_epoch_that_passes_it(train_store, tmp_path):
    config = TrainConfig(store=str(train_store), out=str(tmp_path / "c"), epochs=5, batches_per_epoch=1,
                         batch_size=2, patch_size=48, unet_filters="4,4,8,8", workers=0, val_tile=64, device="cpu",
                         max_minutes=1e-6)  # fmt: skip
    assert ChartTraining.build(config).fit().epoch == 1
    assert "max_minutes" in TrainConfig.option_names()


@pytest.mark.parametrize("model", ["unet", "deeplabv3"])
def test_sic_regression_starts_at_the_mean_training_class(train_store, tmp_path, model):
    config = TrainConfig(
        store=str(train_store),
        out=str(tmp_path),
        model=model,
        unet_filters="4,4,8,8",
        deeplab_depth=18,
        workers=0,
        device="cpu",
    )
    trainer = ChartTraining.build(config)
    census = np.sum([s.record["histograms"]["SIC"][:11] for s in trainer.store.scenes("train")], axis=0)
    mean = float(np.arange(11) @ census / census.sum())
    assert 0 < mean < 10
    sic = [m for m in trainer.network.heads["SIC"].modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert sic.bias.item() == pytest.approx(mean, rel=1e-6)
    classifier = ChartTraining.build(TrainConfig(**{**config.as_params(), "sic_head": "classification"})).network
    logits = [m for m in classifier.heads["SIC"].modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert logits.bias.abs().max() < 1  # a softmax head keeps torch's initialisation


def test_bad_parameters_fail_clearly(train_store, tmp_path, tracking):
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--store", str(train_store), "--lr", "abc"])
    assert result.exit_code == 2 and "Invalid value for '--lr'" in result.output
    result = runner.invoke(cli, ["train", "--store", str(train_store), "--model", "resnet"])
    assert result.exit_code == 1 and "option --model: 'resnet' is not one of unet, deeplabv3" in result.output
    result = runner.invoke(cli, ["train", "--store", str(tmp_path), *TINY])
    assert result.exit_code == 1 and "not a training store" in result.output
    with pytest.raises(ParameterError, match="--task-weights"):
        TrainConfig(task_weights="1,2")


@pytest.mark.parametrize(
    "value, sic_head, charts",
    [
        ("none", "regression", ()),
        ("balanced", "regression", ("SOD", "FLOE")),
        ("balanced", "classification", ("SIC", "SOD", "FLOE")),
        ("balanced:SOD", "regression", ("SOD",)),
        ("balanced:FLOE, SOD", "regression", ("FLOE", "SOD")),
        ("balanced:SIC", "classification", ("SIC",)),
    ],
)
def test_class_weights_name_the_weighted_heads(value, sic_head, charts):
    assert TrainConfig(class_weights=value, sic_head=sic_head).weighted_charts == charts


@pytest.mark.parametrize("value", ["inverse", "balanced:SIC", "balanced:sod", "balanced:", "none:SOD"])
def test_bad_class_weights_name_the_parameter(value):
    with pytest.raises(ParameterError, match="--class-weights.*balanced:SOD"):
        TrainConfig(class_weights=value)


def test_mlflow_run_train(train_store, tmp_path, tracking):
    params = {
        "store": str(train_store),
        "out": str(tmp_path / "ckpt"),
        "lr": "1e-4",
        "epochs": 1,
        "batches_per_epoch": 2,
        "batch_size": 2,
        "patch_size": 64,
        "unet_filters": "8,8,16,16",
        "workers": 0,
        "val_tile": 64,
        "device": "cpu",
    }
    submitted = mlflow.projects.run(
        str(ROOT), entry_point="train", parameters=params, env_manager="local", experiment_name="project-train"
    )
    assert submitted.wait()
    run = mlflow.get_run(submitted.run_id)
    assert run.info.status == "FINISHED" and run.data.params["lr"] == "1e-4"
    assert "best_val_combined" in run.data.metrics
    assert run.info.run_name == f"train unet {train_store.name}"  # not MLflow's random name of `mlflow run`


def test_distributed_training_logs_once(train_store, tmp_path, tracking):
    args = ["train", "--store", str(train_store), "--out", str(tmp_path / "ckpt"), *TINY, "--epochs", "1"]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "seaice_mlflow",
        *args,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = mlflow.search_runs(experiment_names=["train-test"], output_format="list")
    assert len(runs) == 1
    assert runs[0].data.params["world_size"] == "2" and runs[0].info.status == "FINISHED"


# --- reliability (issue 15) --------------------------------------------------------------------


def store_in_one_split(store: Path, out: Path, split: str) -> Path:
    """A copy of ``store`` whose scenes are all in ``split``."""
    shutil.copytree(store, out)
    manifest = json.loads((out / "manifest.json").read_text())
    for scene in manifest["scenes"]:
        scene["split"] = split
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


FLOAT_OPTIONS = [f.name for f in fields(TrainConfig) if isinstance(getattr(TRAIN, f.name), float)]


@pytest.mark.parametrize("name", FLOAT_OPTIONS)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_every_float_option_refuses_nan_and_inf(name, value):
    with pytest.raises(ParameterError, match=f"option --{name.replace('_', '-')}: must be a finite number"):
        TrainConfig(**{name: value})


def test_nan_option_is_one_line_on_the_command_line(train_store, tmp_path, tracking):
    for option in ("--weight-decay", "--momentum", "--focal-gamma", "--grad-clip", "--lr"):
        result = CliRunner().invoke(cli, ["train", "--store", str(train_store), "--out", str(tmp_path), option, "nan"])
        assert result.exit_code == 1 and f"option {option}: must be a finite number, got nan" in result.output
        assert "Traceback" not in result.output
    assert not mlflow.search_runs(experiment_names=["train-test"], output_format="list")


def test_diverged_training_fails_its_run_and_logs_no_model(train_store, tmp_path, tracking):
    out = tmp_path / "ckpt"
    result = CliRunner().invoke(
        cli, ["train", "--store", str(train_store), "--out", str(out), *TINY, "--lr", "1e30", "--grad-clip", "0"]
    )
    assert result.exit_code == 1, result.output
    assert "training diverged in epoch 1" in result.output and "--lr (now 1e+30)" in result.output
    [run] = mlflow.search_runs(experiment_names=["train-test"], output_format="list")
    assert run.info.status == "FAILED" and "best_val_combined" not in run.data.metrics
    assert not mlflow.search_logged_models(filter_string=f"source_run_id = '{run.info.run_id}'", output_format="list")
    assert not (out / LAST).exists() and not (out / BEST).exists()  # nothing non-finite was written


def test_a_network_with_non_finite_weights_is_never_logged(tracking):
    spec = ModelSpec("unet", len(SCENE_VARIABLES), AUTOICE.outputs(), UNetOptions((2, 2)))
    network = build_model(spec)
    with torch.no_grad():
        next(network.parameters())[0] = float("nan")
    with pytest.raises(SeaIceError, match="non-finite weights"):  # checked before anything is logged
        log_chart_model(network, Recipe(spec, SCENE_VARIABLES))


def test_a_kill_between_best_and_last_keeps_the_resume_exact(train_store, tmp_path, monkeypatch):
    """Every epoch improves here (no validation scenes: the last epoch is the best)."""
    no_val = store_in_one_split(train_store, tmp_path / "store", "train")
    config = TrainConfig(
        store=str(no_val),
        out=str(tmp_path / "a"),
        epochs=2,
        batches_per_epoch=1,
        batch_size=2,
        patch_size=48,
        unet_filters="4,4,8,8",
        workers=0,
        val_tile=64,
        device="cpu",
    )
    ChartTraining.build(config).fit()

    import seaice_mlflow.core.trainer as trainer_module

    writes = []
    save = trainer_module.save_checkpoint

    def killed_between_the_writes_of_epoch_2(path, state):
        writes.append(path.name)
        if len(writes) == 4:  # epoch 1 wrote two checkpoints, epoch 2 one of its two
            raise SystemExit("killed")
        return save(path, state)

    interrupted = TrainConfig(**{**config.as_params(), "out": str(tmp_path / "b")})
    with monkeypatch.context() as patch, pytest.raises(SystemExit):
        patch.setattr(trainer_module, "save_checkpoint", killed_between_the_writes_of_epoch_2)
        ChartTraining.build(interrupted).fit()
    best, last = (load_checkpoint(tmp_path / "b" / name)["state"] for name in (BEST, LAST))
    assert best["best_epoch"] >= last["best_epoch"]  # best.pt is never older than what last.pt says
    resumed = ChartTraining.build(interrupted)
    resumed.resume(tmp_path / "b" / LAST)
    resumed.fit()
    a, b = (load_checkpoint(tmp_path / run / BEST)["model"] for run in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_other_hyper_parameters_naming_the_options(train_store, tmp_path, tracking):
    out = tmp_path / "ckpt"
    base = ["train", "--store", str(train_store), "--out", str(out), *TINY, "--epochs", "1"]
    assert CliRunner().invoke(cli, base).exit_code == 0
    result = CliRunner().invoke(cli, [*base, "--resume", str(out), "--lr", "0.5", "--seed", "99"])
    assert result.exit_code == 1
    assert "was trained with --lr 0.001 --seed 0, not --lr 0.5 --seed 99" in result.output
    filters = CliRunner().invoke(cli, [*base, "--resume", str(out), "--unet-filters", "4,4,8,8"])
    assert filters.exit_code == 1 and "--unet-filters 8,8,16,16, not --unet-filters 4,4,8,8" in filters.output
    longer = CliRunner().invoke(cli, [*base, "--resume", str(out), "--epochs", "2", "--workers", "1"])
    assert longer.exit_code == 0, longer.output  # going on longer, with more loader workers, is a resume
    assert len(mlflow.search_runs(experiment_names=["train-test"], output_format="list")) == 2


def test_unwritable_out_fails_before_training(train_store, tmp_path, tracking):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = CliRunner().invoke(cli, ["train", "--store", str(train_store), "--out", str(blocker / "ckpt"), *TINY])
    assert result.exit_code == 1 and f"option --out: {blocker / 'ckpt'} cannot be created" in result.output
    assert not mlflow.search_runs(experiment_names=["train-test"], output_format="list")


def start_training(store: Path, out: Path, epochs: int, *extra: str) -> subprocess.Popen:
    """`seaice train` in its own process, its output a pipe (as under nohup), unbuffered only by the code."""
    args = ["train", "--store", str(store), "--out", str(out), *TINY, "--epochs", str(epochs), *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "seaice_mlflow", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def first_epoch_line(proc: subprocess.Popen) -> str:
    """The first line on stdout: each epoch prints one at once, with no terminal attached."""
    line = proc.stdout.readline()
    assert line.startswith("epoch 1/"), (line, proc.stderr.read() if proc.poll() is not None else "")
    return line


def test_a_killed_run_is_marked_when_resumed_and_the_resume_names_its_id(train_store, tmp_path, tracking):
    out = tmp_path / "ckpt"
    proc = start_training(train_store, out, 50)
    line = first_epoch_line(proc)
    assert "loss" in line and "val" in line and "ETA" in line
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    [killed] = mlflow.search_runs(experiment_names=["train-test"], output_format="list")
    assert killed.info.status == "RUNNING"  # a SIGKILL leaves no chance to say anything
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--store",
            str(train_store),
            "--out",
            str(out),
            *TINY,
            "--epochs",
            "50",
            "--resume",
            str(out / LAST),
            "--early-stopping",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert mlflow.get_run(killed.info.run_id).info.status == "KILLED"
    [resumed] = [
        r
        for r in mlflow.search_runs(experiment_names=["train-test"], output_format="list")
        if r.info.run_id != killed.info.run_id
    ]
    assert resumed.data.tags["seaice.resumed_from"] == killed.info.run_id
    assert resumed.data.tags["seaice.resumed_from_checkpoint"] == str(out / LAST)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_end_the_run_killed_with_the_resume_line(train_store, tmp_path, tracking, signum, code):
    out = tmp_path / "ckpt"
    proc = start_training(train_store, out, 50)
    first_epoch_line(proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err[-3000:]
    assert f"training interrupted by {signal.Signals(signum).name}" in err and "ends KILLED" in err
    assert f"seaice train --resume {out / LAST}" in err and "Traceback" not in err
    [run] = mlflow.search_runs(experiment_names=["train-test"], output_format="list")
    assert run.info.status == "KILLED"
    assert load_checkpoint(out / LAST)["run_id"] == run.info.run_id


# --- the parts of a training run, each alone (training/configure.py) -----------------------------


@pytest.mark.parametrize("optimizer, kind", [("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)])
@pytest.mark.parametrize(
    "scheduler, schedule",
    [
        ("cosine", torch.optim.lr_scheduler.CosineAnnealingWarmRestarts),
        ("plateau", torch.optim.lr_scheduler.ReduceLROnPlateau),
    ],
)
def test_optimizer_and_schedule_follow_the_config(optimizer, kind, scheduler, schedule):
    config = TrainConfig(
        optimizer=optimizer, scheduler=scheduler, lr=3e-4, momentum=0.8, weight_decay=0.05, restart_epochs=7
    )
    built = configure_optimizer(config, [torch.nn.Parameter(torch.zeros(3))])
    assert isinstance(built, kind) and built.param_groups[0]["lr"] == 3e-4
    assert built.param_groups[0]["weight_decay"] == 0.05
    assert optimizer != "sgd" or built.param_groups[0]["momentum"] == 0.8
    steps = configure_scheduler(config, built)
    assert isinstance(steps, schedule) and (scheduler != "cosine" or steps.T_0 == 7)


def test_class_census_and_loss_from_the_store(train_store):
    store = Store(train_store)
    census = class_census(store)
    [train] = store.scenes("train")
    assert {c: census[c].tolist() for c in census} == train.record["histograms"]
    loss = configure_loss(TrainConfig(class_weights="balanced:SOD"), census, torch.device("cpu"))
    assert loss.weighted_charts == ("SOD",) and loss.class_weights_SOD.shape == (6,)
    assert configure_loss(TrainConfig(), census, torch.device("cpu")).weighted_charts == ()


def test_class_census_refuses_a_store_without_training_scenes(train_store, tmp_path):
    only_val = store_in_one_split(train_store, tmp_path / "store", "val")
    with pytest.raises(ParameterError, match="has no training scenes"):
        class_census(Store(only_val))


def test_the_network_is_drawn_from_the_seed(train_store):
    config = TrainConfig(store=str(train_store), unet_filters="4,4,8,8", device="cpu")
    store = Store(train_store)
    recipe, census = configure_recipe(config, store), class_census(store)
    assert recipe.scenes == {
        "train": tuple(s.scene_id for s in store.scenes("train")),
        "val": tuple(s.scene_id for s in store.scenes("val")),
    }
    a, b = (configure_network(config, recipe, census, torch.device("cpu")).state_dict() for _ in range(2))
    other = configure_network(TrainConfig(**{**config.as_params(), "seed": 1}), recipe, census, torch.device("cpu"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], v) for k, v in other.state_dict().items())


def test_patch_filters_are_train_options(train_store, tmp_path, tracking):
    config = TrainConfig(store=str(train_store), border_distance=10, land="exclude", workers=0)
    options = configure_loader(config, Store(train_store)).dataset.options
    assert (options.border_distance, options.land, options.min_valid) == (10, "exclude", 0.3)
    assert config.as_params()["border_distance"] == 10 and config.as_params()["land"] == "exclude"  # logged
    assert (TRAIN.border_distance, TRAIN.land) == (0, "include")  # off: the sampler of before
    for bad in ({"border_distance": -1}, {"border_distance": 256}, {"land": "sea"}):
        with pytest.raises(ParameterError, match=f"--{next(iter(bad)).replace('_', '-')}"):
            TrainConfig(**bad)
    result = CliRunner().invoke(cli, ["train", "--store", str(train_store), "--border-distance", "300"])
    assert result.exit_code == 2 and "Invalid value for '--border-distance'" in result.output
    result = CliRunner().invoke(cli, ["train", "--store", str(train_store), "--land", "sea"])
    assert result.exit_code == 2 and "Invalid value for '--land'" in result.output
    out = tmp_path / "ckpt"
    args = ["train", "--store", str(train_store), "--out", str(out), *TINY, "--epochs", "1"]
    result = CliRunner().invoke(cli, [*args, "--border-distance", "10", "--land", "exclude"])
    assert result.exit_code == 0, result.output
    [run] = mlflow.search_runs(experiment_names=["train-test"], output_format="list")
    assert run.data.params["border_distance"] == "10" and run.data.params["land"] == "exclude"


def test_scenes_where_trains_on_the_chosen_training_scenes_only(ready_dir, tmp_path):
    store = tiny_store(ready_dir, tmp_path / "store", val_scenes=0)
    scenes = [s.scene_id for s in Store(store).scenes("train")]
    assert len(scenes) == 2 and all("metadata" in s.record for s in Store(store).scenes())
    table = tmp_path / "seasons.csv"
    table.write_text(f"scene,season\n{scenes[0]},melt\n{scenes[1]},freeze\n")
    base = {
        "store": str(store),
        "out": str(tmp_path / "ckpt"),
        "unet_filters": "4,4,8,8",
        "workers": 0,
        "device": "cpu",
    }
    chosen = ChartTraining.build(TrainConfig(**base, scenes_where="season=freeze", season_table=str(table)))
    assert chosen.recipe.scenes["train"] == (scenes[1],)
    assert [s.scene_id for s in chosen.store.scenes()] == [scenes[1]]
    everything = ChartTraining.build(TrainConfig(**base))
    assert everything.recipe.scenes["train"] == tuple(scenes)
    half = ChartTraining.build(TrainConfig(**base, scene_fraction=0.5, seed=3))
    assert len(half.recipe.scenes["train"]) == 1 and set(half.recipe.scenes["train"]) < set(scenes)
    both = ChartTraining.build(TrainConfig(**base, scene_fraction=0.5, scenes_where="season=freeze",
                                           season_table=str(table)))  # fmt: skip
    assert both.recipe.scenes["train"] == (scenes[1],)  # the fraction of the chosen scenes, at least one
    with pytest.raises(ParameterError, match="option --scene-fraction: must be above 0 and at most 1, got 0.0"):
        TrainConfig(**base, scene_fraction=0.0)
    table.write_text(f"scene,season\n{scenes[0]},melt\n{scenes[1]},melt\n")
    with pytest.raises(ParameterError, match=r"option --scenes-where: no scene meets 'season=freeze' \(the 2 scenes"):
        ChartTraining.build(TrainConfig(**base, scenes_where="season=freeze", season_table=str(table)))

    manifest = json.loads((store / "manifest.json").read_text())  # a store written before the metadata
    for record in manifest["scenes"]:
        record.pop("metadata")
    (store / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ParameterError, match=r"option --scenes-where: .* run `seaice preprocess --overwrite`"):
        ChartTraining.build(TrainConfig(**base, scenes_where="season=freeze"))
    ChartTraining.build(TrainConfig(**base))  # without the option an older store trains as before
