"""An optical model's recipe: its network spec, the class table and how a photo is scaled.

It travels inside every logged optical model (``recipe.json``), so a photo is fed to the network
exactly as in training and the predicted class indices are written back as the label ids (and
colours) of the data set's own table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from seaice_mlflow.models import ModelSpec, build_model
from seaice_mlflow.tasks.optical.crops import MEAN, STD
from seaice_mlflow.tasks.optical.labels import ClassTable, PhotoClass

#: The input channels of every optical model, in order.
RGB = ("red", "green", "blue")
TASK = "optical"


@dataclass(frozen=True)
class PhotoRecipe:
    """How an optical model sees a photo: its network spec, the class table, the input scaling."""

    model: ModelSpec
    table: ClassTable
    mean: tuple[float, ...] = MEAN
    std: tuple[float, ...] = STD

    def as_dict(self) -> dict:
        return {"task": TASK, "model": self.model.as_dict(), "variables": list(RGB), "mean": list(self.mean),
                "std": list(self.std), "fill_id": self.table.fill_id,
                "classes": [{"id": c.id, "name": c.name, "colour": list(c.colour), "category": c.category}
                            for c in self.table.classes]}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict) -> PhotoRecipe:
        if data.get("task") != TASK:
            raise ValueError(f"the model is for the task {data.get('task')!r}, not {TASK!r}")
        classes = tuple(PhotoClass(c["id"], c["name"], tuple(c["colour"]), c.get("category", ""))
                        for c in data["classes"])  # fmt: skip
        return cls(ModelSpec.from_dict(data["model"]), ClassTable(classes, data.get("fill_id")),
                   tuple(data["mean"]), tuple(data["std"]))  # fmt: skip

    def save(self, path: str | Path) -> Path:
        Path(path).write_text(json.dumps(self.as_dict(), indent=1))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> PhotoRecipe:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def network(self, weights: str | Path) -> torch.nn.Module:
        """The recipe's network with the trained weights of a state dict file."""
        network = build_model(self.model)
        network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return network.eval()
