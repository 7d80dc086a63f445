"""A trained model's recipe: its network and how it sees a scene (inputs, grid, normalisation).

The recipe travels inside every logged model (``recipe.json``), so evaluation and prediction
feed it raw scenes exactly as it was trained: same channels in the same order, same
downsampling, same normalisation table. It also names the scenes the model was fitted on
(``scenes``: training and validation scene ids), so that scoring a model on them can be told,
the task's head kinds (SIC regressed or classified) and the temperature of each classified head
(``temperatures``: fitted on the validation scenes at the end of training,
:mod:`~seaice_mlflow.core.calibration`; a head not named, as in every model logged before, has 1).

Version 2 stores the task and the generic model spec (architecture, outputs per head, the
architecture's options); version 1 recipes (models logged before the task seam) are read too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from seaice_mlflow.core.calibration import check_temperatures
from seaice_mlflow.core.task import TaskSpec
from seaice_mlflow.models import ModelSpec, load_trained, spec_from_options
from seaice_mlflow.tasks.autoice.charts import AUTOICE, autoice_task
from seaice_mlflow.tasks.autoice.files.variables import GLOBAL_MEAN_STD, check_input_variables

RECIPE_VERSION = 2
#: Versions this code reads: 1 (before the task seam: SIC head and options in a flat model spec).
READABLE_VERSIONS = (1, 2)
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
    #: The task as the model predicts it (head kinds); the model's outputs must be its outputs.
    task: TaskSpec = AUTOICE
    #: Temperature of each calibrated classified head (probabilities are softmax(logits / T)); others: 1.
    temperatures: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if dict(self.model.outputs) != self.task.outputs():
            raise ValueError(
                f"the model's outputs {dict(self.model.outputs)} are not those of the task "
                f"{self.task.name} ({self.task.outputs()})"
            )
        check_temperatures(self.task, self.temperatures)

    @property
    def seen_scenes(self) -> frozenset[str]:
        """Every scene the model was trained or validated on: its scores there are not test scores."""
        return frozenset(scene for ids in self.scenes.values() for scene in ids)

    def as_dict(self) -> dict:
        return {
            "version": RECIPE_VERSION,
            "task": {"name": self.task.name, "kinds": self.task.kinds()},
            "model": self.model.as_dict(),
            "variables": list(self.variables),
            "downsample": self.downsample,
            "normalisation": self.normalisation,
            "mean_std": {k: list(v) for k, v in self.mean_std.items()},
            "store_digest": self.store_digest,
            "scenes": {split: list(ids) for split, ids in self.scenes.items()},
            "temperatures": dict(self.temperatures),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        version = data.get("version")
        if version not in READABLE_VERSIONS:
            raise ValueError(
                f"recipe version {version} is not one of {', '.join(map(str, READABLE_VERSIONS))}; "
                "this model was logged by another version of seaice-mlflow"
            )
        if version == 1:
            task, model = legacy_model(data["model"])
        else:
            if data["task"]["name"] != AUTOICE.name:
                raise ValueError(f"the model is for the task {data['task']['name']!r}, not {AUTOICE.name!r}")
            task, model = AUTOICE.with_kinds(data["task"]["kinds"]), ModelSpec.from_dict(data["model"])
        return cls(
            model=model,
            task=task,
            variables=check_input_variables(data["variables"]),
            downsample=int(data["downsample"]),
            normalisation=data["normalisation"],
            mean_std={k: tuple(v) for k, v in data["mean_std"].items()},
            store_digest=data.get("store_digest"),
            scenes={split: tuple(ids) for split, ids in data.get("scenes", {}).items()},
            temperatures={head: float(t) for head, t in data.get("temperatures", {}).items()},
        )

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
            raise ValueError(
                f"the model was trained with another normalisation for {', '.join(differing)}; "
                "use the seaice-mlflow version it was trained with"
            )


def legacy_model(model: Mapping) -> tuple[TaskSpec, ModelSpec]:
    """Task and model spec of a version 1 recipe's flat model spec (``name``, ``sic_head``,
    ``unet_filters``, ``deeplab_depth``, ``pretrained``: the training options of the same names)."""
    task = autoice_task(model.get("sic_head", "regression"))
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in model.items()}
    return task, spec_from_options(model["name"], model["in_channels"], task.outputs(), values)


def load_network(recipe: Recipe, weights: str | Path | dict) -> torch.nn.Module:
    """The recipe's network with trained weights (a state_dict, or a file saved with torch.save)."""
    state = weights if isinstance(weights, dict) else torch.load(weights, map_location="cpu", weights_only=True)
    return load_trained(recipe.model, state)
