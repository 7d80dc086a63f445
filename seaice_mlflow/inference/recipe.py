"""A trained model's recipe: its network and how it sees a scene (inputs, grid, normalisation).

The recipe travels inside every logged model (``recipe.json``), so evaluation and prediction
feed it raw scenes exactly as it was trained: same channels in the same order, same
downsampling, same normalisation table. It also names the scenes the model was fitted on
(``scenes``: training and validation scene ids), so that scoring a model on them can be told.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from seaice_mlflow.data.variables import GLOBAL_MEAN_STD, check_input_variables
from seaice_mlflow.models import ModelSpec, build_model

RECIPE_VERSION = 1
NORMALISATION = "ai4arctic-global-meanstd-v2"
#: The store splits a model is fitted on (training) or selected on (validation).
FittedSplit = Literal["train", "val"]


@dataclass(frozen=True)
class Recipe:
    model: ModelSpec
    variables: tuple[str, ...]
    downsample: int = 1
    normalisation: str = NORMALISATION
    mean_std: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(GLOBAL_MEAN_STD))
    store_digest: str | None = None
    #: Scene ids per split the model was trained and validated on; empty for older models.
    scenes: Mapping[FittedSplit, tuple[str, ...]] = field(default_factory=dict)

    @property
    def seen_scenes(self) -> frozenset[str]:
        """Every scene the model was trained or validated on: its scores there are not test scores."""
        return frozenset(scene for ids in self.scenes.values() for scene in ids)

    def as_dict(self) -> dict:
        return {"version": RECIPE_VERSION, "model": self.model.as_dict(), "variables": list(self.variables),
                "downsample": self.downsample, "normalisation": self.normalisation,
                "mean_std": {k: list(v) for k, v in self.mean_std.items()}, "store_digest": self.store_digest,
                "scenes": {split: list(ids) for split, ids in self.scenes.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        if data.get("version") != RECIPE_VERSION:
            raise ValueError(f"recipe version {data.get('version')} is not {RECIPE_VERSION}; "
                             "this model was logged by another version of seaice-mlflow")
        return cls(model=ModelSpec.from_dict(data["model"]), variables=check_input_variables(data["variables"]),
                   downsample=int(data["downsample"]), normalisation=data["normalisation"],
                   mean_std={k: tuple(v) for k, v in data["mean_std"].items()}, store_digest=data.get("store_digest"),
                   scenes={split: tuple(ids) for split, ids in data.get("scenes", {}).items()})

    def save(self, path: str | Path) -> Path:
        Path(path).write_text(json.dumps(self.as_dict(), indent=1))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def check_normalisation(self) -> None:
        """The readers scale inputs with :data:`GLOBAL_MEAN_STD`; refuse a model trained otherwise."""
        differing = [k for k, v in self.mean_std.items() if tuple(GLOBAL_MEAN_STD.get(k, ())) != tuple(v)]
        if differing:
            raise ValueError(f"the model was trained with another normalisation for {', '.join(differing)}; "
                             "use the seaice-mlflow version it was trained with")


def load_network(recipe: Recipe, weights: str | Path | dict) -> torch.nn.Module:
    """The recipe's network with trained weights (a state_dict, or a file saved with torch.save)."""
    state = weights if isinstance(weights, dict) else torch.load(weights, map_location="cpu", weights_only=True)
    model = build_model(recipe.model)
    model.load_state_dict(state)
    return model.eval()
