"""Logging a trained network as an MLflow pyfunc model, for any task.

A task gives its models-from-code entry file (the ``PythonModel`` MLflow loads), its recipe
file and its signature; this module refuses non-finite weights, saves the state dict, logs the
package itself as ``code_paths`` with explicit pip requirements (the package's own dependencies)
and a ``model_config`` that ``mlflow.pyfunc.load_model(uri, model_config=...)`` can override.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path

import mlflow
import torch
from mlflow.models import ModelSignature

import seaice_mlflow
from seaice_mlflow.core.checkpoint import non_finite_weights
from seaice_mlflow.core.errors import SeaIceError
from seaice_mlflow.tracking.model_refs import TASK_TAG
from seaice_mlflow.tracking.runs import WEIGHTS_ARTIFACT

PACKAGE_DIR = Path(seaice_mlflow.__file__).resolve().parent  # logged with every model as code_paths
RECIPE_ARTIFACT = "recipe"


def pip_requirements() -> list[str]:
    """The package's own dependencies (pyproject), the single source of what a model needs."""
    try:
        return [r for r in requires("seaice-mlflow") or [] if "extra ==" not in r]
    except PackageNotFoundError:
        return ["mlflow>=3.7,<4", "torch>=2.11", "torchvision>=0.26", "numpy", "scipy", "xarray", "netCDF4"]


@contextmanager
def quiet(logger_name: str) -> Iterator[None]:
    """Silence a logger and MLflow's advice to add an input example (a scene or photo is too big for one)."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*input example was not provided.*")
            yield
    finally:
        logger.setLevel(level)


def log_network(
    network: torch.nn.Module,
    entry: Path,
    save_recipe: Callable[[Path], Path],
    signature: ModelSignature,
    model_config: Mapping[str, object],
    task: str,
    name: str = "model",
):
    """Log ``network`` as the pyfunc model ``entry`` of the active run, its recipe written by
    ``save_recipe(folder)``, tagged with its ``task`` family (the registry registers a model under
    names of its own task); returns MLflow's ModelInfo (``model_uri`` is ``models:/m-...``)."""
    broken = non_finite_weights(network.state_dict())
    if broken:
        raise SeaIceError(
            f"the model has non-finite weights ({len(broken)} tensors, e.g. {broken[0]}): it "
            "diverged and is not logged; train again with a lower --lr"
        )
    with tempfile.TemporaryDirectory() as tmp, quiet("mlflow.models.model"):
        # MLflow also records model_config as run params; a training run that used, e.g.,
        # --device cpu already has that param, so MLflow's note about it is expected noise.
        weights = Path(tmp) / "weights.pt"
        torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, weights)
        recipe = save_recipe(Path(tmp))
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(entry),
            artifacts={WEIGHTS_ARTIFACT: str(weights), RECIPE_ARTIFACT: str(recipe)},
            code_paths=[str(PACKAGE_DIR)],
            signature=signature,
            pip_requirements=pip_requirements(),
            model_config=dict(model_config),
            tags={TASK_TAG: task},
        )
