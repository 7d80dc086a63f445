"""The logged optical model: a custom MLflow pyfunc turning RGB photos of any size into class masks.

Input: RGB ``(N, H, W, 3)`` (photos of one size per call; call it per photo for mixed sizes): uint8, or
integers 0-255, or floats in 0-1 (scikit-image's and matplotlib's convention, scaled by 255 and rounded),
or floats that are whole numbers 0-255 (``12.0``); anything else (NaN, values outside those ranges,
booleans) is refused as invalid input (HTTP 400 from ``mlflow models serve``), never truncated. The
signature names no input type: with the uint8 input of the models logged before, the scoring server
cast every JSON number to uint8 before the model saw it, so a float photo in 0-1 came out as 0 or 1
(all black) and was answered 200; :func:`photo_batch` checks instead. A float photo of 0-255 whose
every value is at most 1 (all but black) reads as 0-1.
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
from mlflow.exceptions import MlflowException
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
SIGNATURE = ModelSignature(inputs=None, outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1), HEAD)]))


class PhotoMaskModel(PythonModel):
    """predict(RGB (N, H, W, 3)) -> {"ice": uint8 label ids (N, H, W)} (module docstring)."""

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

    def predict_photo(self, rgb: np.ndarray, progress: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """One photo (H, W, 3) uint8 -> label ids (H, W) and, if asked, probabilities (K, H, W);
        ``progress``: a bar of tile rows on a terminal."""
        tiles = PhotoTiles(np.asarray(rgb, np.uint8), self.recipe.mean, self.recipe.std)
        prediction = self.predictor.predict(tiles, self.probabilities, progress=progress)
        scores = prediction.scores[HEAD] if prediction.scores else None
        return self.ids[prediction.charts[HEAD]], scores

    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> dict[str, np.ndarray]:
        results = [self.predict_photo(photo) for photo in photo_batch(model_input)]
        out = {HEAD: np.stack([ids for ids, _ in results])}
        if self.probabilities:
            out[f"{HEAD}_scores"] = np.stack([scores for _, scores in results])
        return out


def photo_batch(model_input: object) -> np.ndarray:
    """Photos as sent to a logged optical model -> uint8 RGB ``(N, H, W, 3)``, or an ``MlflowException`` of
    invalid input, which the scoring server answers with HTTP 400 and its message (module docstring)."""
    photos = np.asarray(model_input)
    if photos.ndim != 4 or photos.shape[-1] != 3 or not photos.size:
        raise _invalid(f"expected RGB photos (N, H, W, 3), got an array of shape {photos.shape}")
    if photos.dtype == np.uint8:
        return photos
    if photos.dtype.kind in "iu":
        low, high = int(photos.min()), int(photos.max())
        if low < 0 or high > 255:
            raise _invalid(f"the photos hold integers from {low} to {high}; send RGB values 0-255")
        return photos.astype(np.uint8)
    if photos.dtype.kind != "f":
        raise _invalid(f"the photos hold {photos.dtype} values; send RGB values 0-255 (or floats in 0-1)")
    if not np.isfinite(photos).all():
        raise _invalid("the photos hold values that are not finite (NaN or inf); send RGB values 0-255")
    low, high = float(photos.min()), float(photos.max())
    if 0 <= low and high <= 1:  # scikit-image's and matplotlib's floats
        return np.rint(photos * 255.0).astype(np.uint8)
    if 0 <= low and high <= 255 and np.array_equal(photos, np.rint(photos)):  # 0-255 written as floats (12.0)
        return photos.astype(np.uint8)
    raise _invalid(f"the photos hold floats from {low:g} to {high:g}, neither 0-1 nor whole numbers 0-255 (they "
                   "would be truncated); send uint8 RGB 0-255, or floats in 0-1")  # fmt: skip


def _invalid(message: str) -> MlflowException:
    return MlflowException.invalid_parameter_value(message)


def log_photo_model(network: torch.nn.Module, recipe: PhotoRecipe, name: str = "model"):
    """Log the network as an optical pyfunc model of the active run; returns MLflow's ModelInfo."""
    return log_network(network, ENTRY, lambda folder: recipe.save(folder / "recipe.json"), SIGNATURE, MODEL_CONFIG,
                       TASK, name)  # fmt: skip
