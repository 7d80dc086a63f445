"""The logged optical model: a custom MLflow pyfunc turning RGB photos of any size into class masks.

Input: uint8 RGB ``(N, H, W, 3)`` (photos of one size per call; call it per photo for mixed sizes).
Output: ``ice``, uint8 ``(N, H, W)``, the label ids of the data set's class table (as
PixelAnnotationTool writes them; 255 nowhere, every pixel gets a class), and with
``probabilities`` in the model_config ``ice_scores``, float32 ``(N, K, H, W)`` class
probabilities in the table's order. Photos go through the tiled engine (``tile``, ``overlap``,
``batch``, ``device``, ``amp`` of the model_config), so memory follows the tile, not the photo.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import Schema, TensorSpec

from seaice_mlflow.core.engine import ChartPredictor, TileOptions
from seaice_mlflow.tasks.optical.config import OPTICAL_INFERENCE
from seaice_mlflow.tasks.optical.crops import HEAD, PhotoTiles
from seaice_mlflow.tasks.optical.recipe import TASK, PhotoRecipe
from seaice_mlflow.tracking.network_models import RECIPE_ARTIFACT, log_network
from seaice_mlflow.tracking.runs import WEIGHTS_ARTIFACT

ENTRY = Path(__file__).resolve().parent / "pyfunc_entry.py"
#: The logged model's tiling (the inference defaults), device and outputs; load-time model_config overrides them.
MODEL_CONFIG = {
    "device": OPTICAL_INFERENCE.device,
    "tile": OPTICAL_INFERENCE.tile,
    "overlap": OPTICAL_INFERENCE.overlap,
    "batch": 2,
    "amp": True,
    "probabilities": False,
}
SIGNATURE = ModelSignature(
    inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))]),
    outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1), HEAD)]),
)


class PhotoMaskModel(PythonModel):
    """predict(uint8 (N, H, W, 3)) -> {"ice": uint8 label ids (N, H, W)} (module docstring)."""

    def load_context(self, context) -> None:
        config = {**MODEL_CONFIG, **(context.model_config or {})}
        recipe = PhotoRecipe.load(context.artifacts[RECIPE_ARTIFACT])
        options = TileOptions(int(config["tile"]), int(config["overlap"]), int(config["batch"]), bool(config["amp"]))
        self.setup(recipe, [recipe.network(context.artifacts[WEIGHTS_ARTIFACT])], str(config["device"]), options,
                   bool(config["probabilities"]))  # fmt: skip

    def setup(
        self,
        recipe: PhotoRecipe,
        networks: Sequence[torch.nn.Module],
        device: str | torch.device = "auto",
        options: TileOptions = TileOptions(OPTICAL_INFERENCE.tile, OPTICAL_INFERENCE.overlap),
        probabilities: bool = False,
    ) -> PhotoMaskModel:
        """Ready the model for networks in hand (what load_context does for a logged one); several
        networks of one recipe's classes and scaling make an ensemble (probabilities averaged)."""
        self.recipe, self.probabilities = recipe, probabilities
        self.task = recipe.table.to_task()
        self.predictor = ChartPredictor([(network, self.task) for network in networks], device, options)
        self.ids = np.array(recipe.table.ids, np.uint8)
        return self

    def predict_photo(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """One photo (H, W, 3) uint8 -> label ids (H, W) and, if asked, probabilities (K, H, W)."""
        tiles = PhotoTiles(np.asarray(rgb, np.uint8), self.recipe.mean, self.recipe.std)
        prediction = self.predictor.predict(tiles, self.probabilities)
        scores = prediction.scores[HEAD] if prediction.scores else None
        return self.ids[prediction.charts[HEAD]], scores

    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> dict[str, np.ndarray]:
        photos = np.asarray(model_input)
        if photos.ndim != 4 or photos.shape[-1] != 3:
            raise ValueError(f"expected uint8 RGB photos (N, H, W, 3), got an array of shape {photos.shape}")
        results = [self.predict_photo(photo) for photo in photos]
        out = {HEAD: np.stack([ids for ids, _ in results])}
        if self.probabilities:
            out[f"{HEAD}_scores"] = np.stack([scores for _, scores in results])
        return out


def log_photo_model(network: torch.nn.Module, recipe: PhotoRecipe, name: str = "model"):
    """Log the network as an optical pyfunc model of the active run; returns MLflow's ModelInfo."""
    return log_network(network, ENTRY, lambda folder: recipe.save(folder / "recipe.json"), SIGNATURE, MODEL_CONFIG,
                       TASK, name)  # fmt: skip
