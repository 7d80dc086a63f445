"""The logged floe model: a custom MLflow pyfunc turning RGB photos of any size into floe instance maps.

Input: RGB ``(N, H, W, 3)`` as the mask model takes it (:func:`~seaice_mlflow.tasks.optical.pyfunc.photo_batch`:
uint8, integers 0-255, floats in 0-1 or whole-number floats 0-255; photos of one size per call).
Output: ``floes``, int32 ``(N, H, W)``: 0 where there is no floe, the floes of each photo numbered
1..n best detection first. A photo is seen whole (no tiles): the detector resizes it to its
``min_size`` and pastes each floe's mask back at the photo's pixels; detections scoring at least
``score`` (model_config, default 0.5) whose mask has at least the recipe's ``min_floe_pixels``
pixels are floes. The model_config's ``device`` chooses where it runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import Schema, TensorSpec

from seaice_mlflow.core.engine import resolve_device
from seaice_mlflow.models import load_trained
from seaice_mlflow.models.detection import FLOES, FloeNet, paste_masks
from seaice_mlflow.tasks.optical.crops import normalise
from seaice_mlflow.tasks.optical.floes.instances import MASK_THRESHOLD, SCORE_THRESHOLD, detected_instances
from seaice_mlflow.tasks.optical.pyfunc import photo_batch
from seaice_mlflow.tasks.optical.recipe import PhotoRecipe
from seaice_mlflow.tracking.network_models import RECIPE_ARTIFACT, log_network
from seaice_mlflow.tracking.runs import WEIGHTS_ARTIFACT

ENTRY = Path(__file__).resolve().parent / "pyfunc_entry.py"
#: The task family of floe models (their ``seaice.task`` tag, ``core.defaults.TASK_FAMILIES``).
TASK = "optical_floes"
MODEL_CONFIG = {"device": "auto", "score": SCORE_THRESHOLD}
SIGNATURE = ModelSignature(inputs=None, outputs=Schema([TensorSpec(np.dtype(np.int32), (-1, -1, -1), FLOES)]))


def floe_network(recipe: PhotoRecipe, weights: str | Path) -> FloeNet:
    """The recipe's detector with the trained weights of a state dict file (the backbone's
    ``pretrained`` file of the training is not needed: every weight is in ``weights``)."""
    return load_trained(recipe.model, torch.load(weights, map_location="cpu", weights_only=True))


def detect_floes(
    network: FloeNet,
    rgb: np.ndarray,
    recipe: PhotoRecipe,
    device: torch.device,
    score: float = SCORE_THRESHOLD,
    amp: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """One photo (H, W, 3) uint8 -> its instance map (H, W) int32 and the score of each floe
    (float32, floe ``k`` at ``k - 1``), scaled as the recipe says; leaves the network in eval mode."""
    network.eval()
    image = torch.from_numpy(normalise(np.asarray(rgb, np.uint8), recipe.mean, recipe.std)).to(device)
    with torch.autocast("cuda", dtype=torch.float16, enabled=amp and device.type == "cuda"):
        found = network.detect([image])[0]
    keep = found["scores"] >= score
    pasted = paste_masks(found["masks"][keep], found["boxes"][keep].float(), tuple(rgb.shape[:2]), MASK_THRESHOLD)
    detections = [(window, inside.cpu().numpy()) for window, inside in pasted]
    scores = found["scores"][keep].float().cpu().tolist()
    return detected_instances(detections, scores, tuple(rgb.shape[:2]), score, recipe.min_floe_pixels)


class FloeModel(PythonModel):
    """predict(RGB (N, H, W, 3)) -> {"floes": int32 instance ids (N, H, W)} (module docstring)."""

    def load_context(self, context) -> None:
        config = {**MODEL_CONFIG, **(context.model_config or {})}
        recipe = PhotoRecipe.load(context.artifacts[RECIPE_ARTIFACT])
        network = floe_network(recipe, context.artifacts[WEIGHTS_ARTIFACT])
        self.setup(recipe, network, str(config["device"]), float(config["score"]))

    def setup(self, recipe: PhotoRecipe, network: FloeNet, device: str = "auto",
              score: float = SCORE_THRESHOLD) -> FloeModel:  # fmt: skip
        """Ready the model for a network in hand (what load_context does for a logged one)."""
        self.recipe, self.score = recipe, score
        self.device = resolve_device(device)
        self.network = network.to(self.device).eval()
        return self

    def predict_photo(self, rgb: np.ndarray, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """One photo (H, W, 3) uint8 -> its instance map (H, W) int32 (0: no floe) and the floes'
        scores (float32, floe ``k`` at ``k - 1``); one pass of the whole photo, so ``progress`` shows nothing."""
        return detect_floes(self.network, rgb, self.recipe, self.device, self.score)

    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> dict[str, np.ndarray]:
        return {FLOES: np.stack([self.predict_photo(photo)[0] for photo in photo_batch(model_input)])}


def log_floe_model(network: torch.nn.Module, recipe: PhotoRecipe, name: str = "model"):
    """Log the detector as a floe pyfunc model (task family :data:`TASK`) of the active run;
    returns MLflow's ModelInfo."""
    return log_network(network, ENTRY, lambda folder: recipe.save(folder / "recipe.json"), SIGNATURE, MODEL_CONFIG,
                       TASK, name)  # fmt: skip
