"""The logged model: a custom MLflow pyfunc predicting SIC/SOD/FLOE class maps for any scene size.

Logged from code (``pyfunc_entry.py``) with the package as ``code_paths``, the state_dict and the
recipe as artifacts, an explicit signature (float32 ``(-1, C, -1, -1)`` in, uint8 class maps
out), explicit pip requirements and a ``model_config`` (device, tiling, probabilities) that
``mlflow.pyfunc.load_model(uri, model_config=...)`` can override.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path

import mlflow
import numpy as np
import torch
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

import seaice_mlflow
from seaice_mlflow.core.checkpoint import non_finite_weights
from seaice_mlflow.core.engine import ChartPrediction, ChartPredictor, TileOptions
from seaice_mlflow.core.errors import SeaIceError
from seaice_mlflow.core.task import TaskSpec
from seaice_mlflow.tasks.autoice.grid import SceneSource
from seaice_mlflow.tasks.autoice.recipe import Recipe, load_network
from seaice_mlflow.tasks.autoice.sources import ArrayTiles, SceneTiles
from seaice_mlflow.tracking.runs import WEIGHTS_ARTIFACT

PACKAGE_DIR = Path(seaice_mlflow.__file__).resolve().parent  # logged with the model as code_paths
ENTRY = Path(__file__).resolve().parent / "pyfunc_entry.py"
WEIGHTS, RECIPE = WEIGHTS_ARTIFACT, "recipe"
#: Defaults of the logged ``model_config``; override at load time.
MODEL_CONFIG = {
    "device": "auto",
    "tile": TileOptions.tile,
    "overlap": TileOptions.overlap,
    "batch": TileOptions.batch,
    "amp": True,
    "probabilities": False,
}


class SeaIceChartModel(mlflow.pyfunc.PythonModel):
    """predict(float32 (N, C, H, W)) -> {"SIC", "SOD", "FLOE": uint8 (N, H, W)} and, with
    ``probabilities``, ``<chart>_scores`` float32 (N, K, H, W)."""

    def load_context(self, context) -> None:
        config = {**MODEL_CONFIG, **(context.model_config or {})}
        recipe = Recipe.load(context.artifacts[RECIPE])
        options = TileOptions(int(config["tile"]), int(config["overlap"]), int(config["batch"]), bool(config["amp"]))
        self.setup(
            recipe,
            load_network(recipe, context.artifacts[WEIGHTS]),
            str(config["device"]),
            options,
            bool(config["probabilities"]),
        )

    def setup(
        self,
        recipe: Recipe,
        network: torch.nn.Module,
        device: str = "auto",
        options: TileOptions = TileOptions(),
        probabilities: bool = False,
    ) -> SeaIceChartModel:
        """Ready the model for a network in hand (what load_context does for a logged one)."""
        recipe.check_normalisation()
        self.recipe, self.probabilities = recipe, probabilities
        self.predictor = ChartPredictor([(network, recipe.task)], device, options)
        return self

    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> dict[str, np.ndarray]:
        stacks = np.asarray(model_input, dtype=np.float32)
        results = [self.predict_stack(stack) for stack in stacks]
        heads = self.recipe.task.names
        out = {c: np.stack([r.charts[c] for r in results]) for c in heads}
        if self.probabilities:
            out.update({f"{c}_scores": np.stack([r.scores[c] for r in results]) for c in heads})
        return out

    def predict_stack(self, stack: np.ndarray) -> ChartPrediction:
        """One input stack (C, H, W) at 80 m, channels in the recipe's order."""
        tiles = ArrayTiles(stack, self.recipe.variables, self.recipe.downsample)
        return self.predictor.predict(tiles, self.probabilities).upsampled(self.recipe.downsample, stack.shape[1:])

    def predict_scene(self, scene: SceneSource, progress: bool = False) -> ChartPrediction:
        """A whole scene read tile by tile (memory set by the tile size), on its 80 m grid."""
        tiles = SceneTiles(scene, self.recipe.variables, self.recipe.downsample)
        prediction = self.predictor.predict(tiles, self.probabilities, progress=progress)
        return prediction.upsampled(self.recipe.downsample, tuple(scene.full_shape))


def signature(task: TaskSpec, channels: int) -> ModelSignature:
    """float32 (N, channels, H, W) in; one uint8 class map (N, H, W) per pixel head out (one class
    (N,) per patch head)."""
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, channels, -1, -1))]),
        outputs=Schema(
            [TensorSpec(np.dtype(np.uint8), (-1, -1, -1) if h.level == "pixel" else (-1,), h.name) for h in task.heads]
        ),
    )


def pip_requirements() -> list[str]:
    """The package's own dependencies (pyproject), the single source of what the model needs."""
    try:
        return [r for r in requires("seaice-mlflow") or [] if "extra ==" not in r]
    except PackageNotFoundError:
        return ["mlflow>=3.7,<4", "torch>=2.11", "torchvision>=0.26", "numpy", "scipy", "xarray", "netCDF4"]


def log_chart_model(network: torch.nn.Module, recipe: Recipe, name: str = "model"):
    """Log the network as a pyfunc model of the active run; returns MLflow's ModelInfo
    (``model_info.model_uri`` is ``models:/m-...``)."""
    broken = non_finite_weights(network.state_dict())
    if broken:
        raise SeaIceError(
            f"the model has non-finite weights ({len(broken)} tensors, e.g. {broken[0]}): it "
            "diverged and is not logged; train again with a lower --lr"
        )
    with tempfile.TemporaryDirectory() as tmp, _quiet("mlflow.models.model"):
        # MLflow also records model_config as run params; a training run that used, e.g.,
        # --device cpu already has that param, so MLflow's note about it is expected noise.
        weights = Path(tmp) / "weights.pt"
        torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, weights)
        recipe_path = recipe.save(Path(tmp) / "recipe.json")
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(ENTRY),
            artifacts={WEIGHTS: str(weights), RECIPE: str(recipe_path)},
            code_paths=[str(PACKAGE_DIR)],
            signature=signature(recipe.task, len(recipe.variables)),
            pip_requirements=pip_requirements(),
            model_config=dict(MODEL_CONFIG),
        )


@contextmanager
def _quiet(logger_name: str):
    """Silence a logger and MLflow's advice to add an input example (a scene is too big for one)."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*input example was not provided.*")
            yield
    finally:
        logger.setLevel(level)


def load_chart_model(model_uri: str, **model_config) -> SeaIceChartModel:
    """A logged model (any MLflow model URI) as the python object behind the pyfunc."""
    config = {k: v for k, v in model_config.items() if v is not None}
    return mlflow.pyfunc.load_model(model_uri, model_config=config or None).unwrap_python_model()
