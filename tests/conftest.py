"""Shared fixtures: tiny synthetic scenes in every file layout, written once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seaice_mlflow.tasks.autoice.synthetic import synthesize

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one pytest-xdist worker per core: one thread each (torch and the processes
    # a test starts) instead of two workers fighting over both cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")

SIZE = (96, 128)
SEED = 11


@pytest.fixture(autouse=True)
def isolated_mlflow_env(monkeypatch, tmp_path):
    """MLflow writes MLFLOW_EXPERIMENT_ID into os.environ as a side effect; keep tests apart.

    Tests run in their temp folder: a sqlite store puts new experiments' artifacts under
    ``./mlruns`` of the working directory, which must not be the source tree.
    """
    monkeypatch.chdir(tmp_path)
    for key in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)
    yield
    import mlflow

    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture(scope="session")
def ready_dir(tmp_path_factory) -> Path:
    """Two ready-to-train scenes (with charts)."""
    out = tmp_path_factory.mktemp("ready")
    synthesize(out, n_scenes=2, size=SIZE, split="train", fmt="ready", seed=SEED)
    return out


@pytest.fixture(scope="session")
def raw_dir(tmp_path_factory) -> Path:
    """The same two scenes as raw 40 m files with egg-coded ice charts."""
    out = tmp_path_factory.mktemp("raw")
    synthesize(out, n_scenes=2, size=SIZE, split="train", fmt="raw", seed=SEED)
    return out


@pytest.fixture(scope="session")
def test_dir(tmp_path_factory) -> Path:
    """Two test scenes: _prep.nc without charts plus _prep_reference.nc."""
    out = tmp_path_factory.mktemp("test")
    synthesize(out, n_scenes=2, size=SIZE, split="test", fmt="ready", seed=SEED + 1)
    return out


@pytest.fixture(scope="session")
def raw_test_dir(tmp_path_factory) -> Path:
    """One raw test file (no ice chart) plus its reference."""
    out = tmp_path_factory.mktemp("rawtest")
    synthesize(out, n_scenes=1, size=SIZE, split="test", fmt="raw", seed=SEED + 2)
    return out


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory, request) -> str:
    """A sqlite tracking store shared by the tests of one module."""
    return f"sqlite:///{tmp_path_factory.mktemp(request.module.__name__.rsplit('.', 1)[-1]) / 'mlflow.db'}"


@pytest.fixture
def tracking(store_uri, monkeypatch, request) -> str:
    """MLflow, and the processes a test starts, pointed at the module's store and its ``EXPERIMENT``."""
    from tests.tiny_model import use_tracking

    use_tracking(monkeypatch, store_uri, request.module.EXPERIMENT)
    return store_uri


def run_preprocess(data: Path, out: Path, **options):
    """``preprocess`` with the tests' usual options (one process, no validation scenes), any overridden."""
    from seaice_mlflow.tasks.autoice.conversion import preprocess
    from seaice_mlflow.tasks.autoice.files.variables import SCENE_VARIABLES

    defaults = dict(
        downsample=1, variables=SCENE_VARIABLES, val_scenes=0, val_list=None, workers=1, overwrite=False, seed=0
    )
    return preprocess(data, out, **{**defaults, **options})


def prep_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*_prep.nc"))


@pytest.fixture(scope="session")
def train_store(ready_dir, tmp_path_factory) -> Path:
    """The store of ``ready_dir``: one training and one validation scene (read only: copy it to change it)."""
    from tests.tiny_model import tiny_store

    out = tmp_path_factory.mktemp("train-store")
    tiny_store(ready_dir, out)
    return out
