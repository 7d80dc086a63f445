"""The logged model: a custom MLflow pyfunc predicting SIC/SOD/FLOE class maps for any scene size.

Logged from code (``pyfunc_entry.py``) with the package as ``code_paths``, the state_dict and the
recipe as artifacts, an explicit signature (float32 ``(-1, C, -1, -1)`` in, uint8 class maps
out), explicit pip requirements and a ``model_config`` (device, tiling, probabilities, uncertainty
layers) that ``mlflow.pyfunc.load_model(uri, model_config=...)`` can override. Probabilities are
calibrated with the recipe's temperatures (T = 1 for models logged before calibration).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import mlflow
import numpy as np
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from seaice_mlflow.core.engine import ChartPrediction, ChartPredictor, Member, TileOptions
from seaice_mlflow.core.task import TaskSpec
from seaice_mlflow.tasks.autoice.grid import SceneSource
from seaice_mlflow.tasks.autoice.recipe import Recipe, load_network
from seaice_mlflow.tasks.autoice.sources import ArrayTiles, SceneTiles
from seaice_mlflow.tracking.network_models import RECIPE_ARTIFACT, log_network
from seaice_mlflow.tracking.runs import WEIGHTS_ARTIFACT

ENTRY = Path(__file__).resolve().parent / "pyfunc_entry.py"
WEIGHTS, RECIPE = WEIGHTS_ARTIFACT, RECIPE_ARTIFACT
#: Defaults of the logged ``model_config``; override at load time.
MODEL_CONFIG = {
    "device": "auto",
    "tile": TileOptions.tile,
    "overlap": TileOptions.overlap,
    "batch": TileOptions.batch,
    "amp": True,
    "probabilities": False,
    "uncertainty": False,
}


class SeaIceChartModel(mlflow.pyfunc.PythonModel):
    """predict(float32 (N, C, H, W)) -> {"SIC", "SOD", "FLOE": uint8 (N, H, W)}; with
    ``probabilities``, ``<chart>_scores`` float32 (N, K, H, W); with ``uncertainty``, the layers
    (``<chart>_confidence``, ``_entropy``, ``SIC_spread`` for a regressed SIC) float32 (N, H, W)."""

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
            bool(config["uncertainty"]),
        )

    def setup(
        self,
        recipe: Recipe,
        network: torch.nn.Module,
        device: str = "auto",
        options: TileOptions = TileOptions(),
        probabilities: bool = False,
        uncertainty: bool = False,
    ) -> SeaIceChartModel:
        """Ready the model for a network in hand (what load_context does for a logged one)."""
        recipe.check_normalisation()
        self.recipe, self.probabilities, self.uncertainty = recipe, probabilities, uncertainty
        self.predictor = ChartPredictor([Member(network, recipe.task, recipe.temperatures)], device, options)
        return self

    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> dict[str, np.ndarray]:
        stacks = np.asarray(model_input, dtype=np.float32)
        check_finite_request(stacks, self.recipe.variables)
        results = [self.predict_stack(stack) for stack in stacks]
        heads = self.recipe.task.names
        out = {c: np.stack([r.charts[c] for r in results]) for c in heads}
        if self.probabilities:
            out.update({f"{c}_scores": np.stack([r.scores[c] for r in results]) for c in heads})
        if self.uncertainty:
            out.update({name: np.stack([r.uncertainty[name] for r in results]) for name in results[0].uncertainty})
        return out

    def predict_stack(self, stack: np.ndarray) -> ChartPrediction:
        """One input stack (C, H, W) at 80 m, channels in the recipe's order."""
        tiles = ArrayTiles(stack, self.recipe.variables, self.recipe.downsample)
        prediction = self.predictor.predict(tiles, self.probabilities, uncertainty=self.uncertainty)
        return prediction.upsampled(self.recipe.downsample, stack.shape[1:])

    def predict_scene(self, scene: SceneSource, progress: bool = False) -> ChartPrediction:
        """A whole scene read tile by tile (memory set by the tile size), on its 80 m grid."""
        tiles = SceneTiles(scene, self.recipe.variables, self.recipe.downsample)
        prediction = self.predictor.predict(tiles, self.probabilities, progress=progress, uncertainty=self.uncertainty)
        return prediction.upsampled(self.recipe.downsample, tuple(scene.full_shape))


def check_finite_request(stacks: np.ndarray, variables: Sequence[str]) -> None:
    """Refuse a request (N, C, H, W) holding NaN or inf: one such value spreads through every
    convolution it reaches (one in a 64 x 64 request turned the whole answer to class 0). An
    ``MlflowException`` of invalid input, which the scoring server answers with HTTP 400, names the
    channels and what to send instead (what the scene readers do: :mod:`.files.nonfinite`)."""
    finite = np.isfinite(stacks)
    if stacks.ndim != 4 or finite.all():
        return
    counts = (~finite).sum(axis=(0, 2, 3))
    named = ", ".join(f"{c} ({variables[c] if c < len(variables) else '?'}: {counts[c]} values)"
                      for c in np.flatnonzero(counts))  # fmt: skip
    raise MlflowException.invalid_parameter_value(
        f"input channel(s) {named} hold values that are not finite (NaN or inf); send 0 (the fill value) in "
        "the SAR channels of a pixel without data and the nearest finite value in the others, as the scene "
        "readers do"
    )


def signature(task: TaskSpec, channels: int) -> ModelSignature:
    """float32 (N, channels, H, W) in; one uint8 class map (N, H, W) per pixel head out (one class
    (N,) per patch head)."""
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, channels, -1, -1))]),
        outputs=Schema(
            [TensorSpec(np.dtype(np.uint8), (-1, -1, -1) if h.level == "pixel" else (-1,), h.name) for h in task.heads]
        ),
    )


def log_chart_model(network: torch.nn.Module, recipe: Recipe, name: str = "model"):
    """Log the network as a pyfunc model of the active run; returns MLflow's ModelInfo
    (``model_info.model_uri`` is ``models:/m-...``)."""
    return log_network(network, ENTRY, lambda folder: recipe.save(folder / "recipe.json"),
                       signature(recipe.task, len(recipe.variables)), MODEL_CONFIG, recipe.task.name, name)  # fmt: skip


def load_chart_model(model_uri: str, **model_config) -> SeaIceChartModel:
    """A logged model (any MLflow model URI) as the python object behind the pyfunc."""
    config = {k: v for k, v in model_config.items() if v is not None}
    return mlflow.pyfunc.load_model(model_uri, model_config=config or None).unwrap_python_model()
