"""Training end to end against a temporary sqlite MLflow store: logging, pyfunc model, resume, DDP."""

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from seaice_mlflow.cli import cli
from seaice_mlflow.data.preprocess import preprocess
from seaice_mlflow.data.variables import SCENE_VARIABLES
from seaice_mlflow.errors import ParameterError
from seaice_mlflow.training.checkpoint import BEST, LAST, load_checkpoint
from seaice_mlflow.training.options import TrainConfig
from seaice_mlflow.training.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--epochs", "2", "--batches-per-epoch", "2", "--batch-size", "4", "--patch-size", "64",
        "--unet-filters", "8,8,16,16", "--workers", "0", "--val-tile", "64", "--device", "cpu"]


@pytest.fixture(scope="module")
def store(ready_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train-store")
    preprocess(ready_dir, out, downsample=1, variables=SCENE_VARIABLES, val_scenes=1, val_list=None, workers=1,
               overwrite=False, seed=0)
    return out


@pytest.fixture
def tracking(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "train-test")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    mlflow.set_tracking_uri(uri)
    return uri


def test_train_logs_everything_and_a_loadable_model(store, tmp_path, tracking):
    result = CliRunner().invoke(cli, ["train", "--store", str(store), "--out", str(tmp_path / "ckpt"), *TINY,
                                      "--class-weights", "balanced:SOD"])
    assert result.exit_code == 0, result.output
    [run] = mlflow.search_runs(experiment_names=["train-test"], output_format="list")
    assert run.info.status == "FINISHED"
    assert set(TrainConfig.option_names()) <= set(run.data.params)
    assert run.data.params["lr"] == "0.001" and run.data.tags["seaice.store_digest"]
    assert run.data.params["class_weights"] == "balanced:SOD"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == [0, 1]
    for name in ("val_SIC_r2", "val_SOD_f1", "val_FLOE_f1", "val_combined", "lr", "patches_per_s",
                 "train_loss_SOD", "best_val_combined", "best_epoch"):
        assert name in run.data.metrics, name
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"config.json", "recipe.json", "learning_curves.png", "checkpoints", "quicklooks"} <= artifacts
    [logged] = mlflow.search_logged_models(filter_string=f"source_run_id = '{run.info.run_id}'", output_format="list")

    model = mlflow.pyfunc.load_model(logged.model_uri, model_config={"device": "cpu", "tile": 32})
    channels = len(model.metadata.get_input_schema().inputs[0].shape) and model.metadata.get_input_schema().inputs[0].shape[1]
    out = model.predict(np.random.default_rng(0).normal(size=(1, channels, 37, 53)).astype(np.float32))
    assert set(out) == {"SIC", "SOD", "FLOE"}
    assert out["SIC"].shape == (1, 37, 53) and out["SIC"].dtype == np.uint8 and out["SIC"].max() <= 10
    with pytest.raises(mlflow.exceptions.MlflowException):  # the signature rejects other channel counts
        model.predict(np.zeros((1, channels - 1, 16, 16), np.float32))


def test_resume_continues_exactly(store, tmp_path):
    straight = TrainConfig(store=str(store), out=str(tmp_path / "a"), epochs=2, batches_per_epoch=2, batch_size=2,
                           patch_size=48, unet_filters="4,4,8,8", workers=0, val_tile=64, device="cpu")
    Trainer(straight).fit()
    first_half = TrainConfig(**{**straight.as_params(), "out": str(tmp_path / "b"), "epochs": 1})
    Trainer(first_half).fit()
    resumed = Trainer(TrainConfig(**{**straight.as_params(), "out": str(tmp_path / "b")}))
    resumed.resume(tmp_path / "b" / LAST)
    resumed.fit()
    a = load_checkpoint(tmp_path / "a" / LAST)["model"]
    b = load_checkpoint(tmp_path / "b" / LAST)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "b" / BEST).is_file()


@pytest.mark.parametrize("model", ["unet", "deeplabv3"])
def test_sic_regression_starts_at_the_mean_training_class(store, tmp_path, model):
    config = TrainConfig(store=str(store), out=str(tmp_path), model=model, unet_filters="4,4,8,8", deeplab_depth=18,
                         workers=0, device="cpu")
    trainer = Trainer(config)
    census = np.sum([s.record["histograms"]["SIC"][:11] for s in trainer.store.scenes("train")], axis=0)
    mean = float(np.arange(11) @ census / census.sum())
    assert 0 < mean < 10
    sic = [m for m in trainer.network.heads["SIC"].modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert sic.bias.item() == pytest.approx(mean, rel=1e-6)
    classifier = Trainer(TrainConfig(**{**config.as_params(), "sic_head": "classification"})).network
    logits = [m for m in classifier.heads["SIC"].modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert logits.bias.abs().max() < 1  # a softmax head keeps torch's initialisation


def test_bad_parameters_fail_clearly(store, tmp_path, tracking):
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--store", str(store), "--lr", "abc"])
    assert result.exit_code == 2 and "Invalid value for '--lr'" in result.output
    result = runner.invoke(cli, ["train", "--store", str(store), "--model", "resnet"])
    assert result.exit_code == 1 and "parameter model: 'resnet' is not one of unet, deeplabv3" in result.output
    result = runner.invoke(cli, ["train", "--store", str(tmp_path), *TINY])
    assert result.exit_code == 1 and "not a training store" in result.output
    with pytest.raises(ParameterError, match="task_weights"):
        TrainConfig(task_weights="1,2")


@pytest.mark.parametrize("value, sic_head, charts", [
    ("none", "regression", ()),
    ("balanced", "regression", ("SOD", "FLOE")),
    ("balanced", "classification", ("SIC", "SOD", "FLOE")),
    ("balanced:SOD", "regression", ("SOD",)),
    ("balanced:FLOE, SOD", "regression", ("FLOE", "SOD")),
    ("balanced:SIC", "classification", ("SIC",)),
])
def test_class_weights_name_the_weighted_heads(value, sic_head, charts):
    assert TrainConfig(class_weights=value, sic_head=sic_head).weighted_charts == charts


@pytest.mark.parametrize("value", ["inverse", "balanced:SIC", "balanced:sod", "balanced:", "none:SOD"])
def test_bad_class_weights_name_the_parameter(value):
    with pytest.raises(ParameterError, match="class_weights.*balanced:SOD"):
        TrainConfig(class_weights=value)


def test_mlflow_run_train(store, tmp_path, tracking):
    params = {"store": str(store), "out": str(tmp_path / "ckpt"), "lr": "1e-4", "epochs": 1,
              "batches_per_epoch": 2, "batch_size": 2, "patch_size": 64, "unet_filters": "8,8,16,16",
              "workers": 0, "val_tile": 64, "device": "cpu"}
    submitted = mlflow.projects.run(str(ROOT), entry_point="train", parameters=params, env_manager="local",
                                    experiment_name="project-train")
    assert submitted.wait()
    run = mlflow.get_run(submitted.run_id)
    assert run.info.status == "FINISHED" and run.data.params["lr"] == "1e-4"
    assert "best_val_combined" in run.data.metrics


def test_distributed_training_logs_once(store, tmp_path, tracking):
    args = ["train", "--store", str(store), "--out", str(tmp_path / "ckpt"), *TINY, "--epochs", "1"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               "-m", "seaice_mlflow", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    runs = mlflow.search_runs(experiment_names=["train-test"], output_format="list")
    assert len(runs) == 1
    assert runs[0].data.params["world_size"] == "2" and runs[0].info.status == "FINISHED"
