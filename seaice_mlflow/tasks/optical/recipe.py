"""An optical model's recipe: its network spec, the class table and how a photo is scaled.

It travels inside every logged optical model (``recipe.json``), so a photo is fed to the network
exactly as in training and the predicted class indices are written back as the label ids (and
colours) of the data set's own table. A floe detector's recipe also names the classes its floes
are drawn from and the smallest floe (``floe_classes``, ``min_floe_pixels``; absent otherwise).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from seaice_mlflow.models import ModelSpec, load_trained
from seaice_mlflow.tasks.optical.crops import MEAN, STD
from seaice_mlflow.tasks.optical.labels import ClassTable, PhotoClass

#: The input channels of every optical model, in order.
RGB = ("red", "green", "blue")
TASK = "optical"


@dataclass(frozen=True)
class PhotoRecipe:
    """How an optical model sees a photo: its network spec, the class table, the input scaling, and
    the fingerprints of the photos it was trained or validated on (:meth:`Photo.digest`)."""

    model: ModelSpec
    table: ClassTable
    mean: tuple[float, ...] = MEAN
    std: tuple[float, ...] = STD
    floe_classes: tuple[str, ...] = ()  # a floe detector's: classes whose regions are floes
    min_floe_pixels: int = 1
    photos: tuple[str, ...] = ()  # digests of its training and validation photos

    @property
    def seen_photos(self) -> frozenset[str]:
        """Every photo the model was trained or validated on: its scores there are not test scores."""
        return frozenset(self.photos)

    def as_dict(self) -> dict:
        floes = {"floe_classes": list(self.floe_classes), "min_floe_pixels": self.min_floe_pixels}
        return {"task": TASK, "model": self.model.as_dict(), "variables": list(RGB), "mean": list(self.mean),
                "std": list(self.std), "fill_id": self.table.fill_id,
                "classes": [{"id": c.id, "name": c.name, "colour": list(c.colour), "category": c.category}
                            for c in self.table.classes], **(floes if self.floe_classes else {}),
                "photos": list(self.photos)}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict) -> PhotoRecipe:
        if data.get("task") != TASK:
            raise ValueError(f"the model is for the task {data.get('task')!r}, not {TASK!r}")
        classes = tuple(PhotoClass(c["id"], c["name"], tuple(c["colour"]), c.get("category", ""))
                        for c in data["classes"])  # fmt: skip
        return cls(ModelSpec.from_dict(data["model"]), ClassTable(classes, data.get("fill_id")),
                   tuple(data["mean"]), tuple(data["std"]), tuple(data.get("floe_classes", ())),
                   int(data.get("min_floe_pixels", 1)), tuple(data.get("photos", ())))  # fmt: skip

    def save(self, path: str | Path) -> Path:
        Path(path).write_text(json.dumps(self.as_dict(), indent=1))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> PhotoRecipe:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def network(self, weights: str | Path) -> torch.nn.Module:
        """The recipe's network with the trained weights of a state dict file."""
        return load_trained(self.model, torch.load(weights, map_location="cpu", weights_only=True))
