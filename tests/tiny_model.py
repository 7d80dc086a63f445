"""A tiny trained chart model in a temporary sqlite MLflow store, shared by a test module."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import mlflow
import pytest

from seaice_mlflow.tasks.autoice.conversion import preprocess
from seaice_mlflow.tasks.autoice.files.variables import SCENE_VARIABLES
from seaice_mlflow.tasks.autoice.train_config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
#: `seaice train` options of a tiny, quick CPU training (2 batches of 4 patches of a U-Net 8,8,16,16).
TINY_TRAIN = (
    "--batches-per-epoch 2 --batch-size 4 --patch-size 64 --unet-filters 8,8,16,16 "
    "--workers 0 --val-tile 64 --device cpu"
).split()


def use_tracking(monkeypatch: pytest.MonkeyPatch, uri: str, experiment: str) -> None:
    """Point MLflow (and child processes, with this venv first on PATH) at ``uri``."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    mlflow.set_tracking_uri(uri)


def tiny_store(data: Path, out: Path, val_scenes: int = 1) -> Path:
    """The training store of the scenes in ``data`` at full resolution, ``val_scenes`` held out (seed 0)."""
    preprocess(
        data,
        out,
        downsample=1,
        variables=SCENE_VARIABLES,
        val_scenes=val_scenes,
        val_list=None,
        workers=1,
        overwrite=False,
        seed=0,
    )
    return out


def train_tiny_model(ready_dir: Path, work: Path, uri: str, experiment: str) -> tuple[str, str]:
    """1 epoch x 2 batches of a U-Net 8,8,16,16 on 64 px patches; (models:/m-... URI, train run id)."""
    from seaice_mlflow.tasks.autoice.steps.train import train

    store = work / "store"
    tiny_store(ready_dir, store)
    with pytest.MonkeyPatch.context() as patch:
        use_tracking(patch, uri, experiment)
        patch.chdir(work)  # a new experiment's artifacts go to ./mlruns: keep them out of the source tree
        result = train(
            TrainConfig(
                store=str(store),
                out=str(work / "ckpt"),
                epochs=1,
                batches_per_epoch=2,
                batch_size=4,
                patch_size=64,
                unet_filters="8,8,16,16",
                workers=0,
                val_tile=64,
                device="cpu",
            )
        )
    for key in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):  # set by MLflow as a side effect
        os.environ.pop(key, None)
    return result.model_uri, result.run_id
