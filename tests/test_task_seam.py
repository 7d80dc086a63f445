"""The task seam: the generic core serves a task it has never heard of, and a new architecture
plugs into the registry (the "how to add" recipes of DEVELOPERS.md, tried here)."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import seaice_mlflow
from seaice_mlflow.core.checkpoint import BEST, LAST, load_checkpoint
from seaice_mlflow.core.engine import ChartPredictor, TileOptions
from seaice_mlflow.core.losses import MultiTaskLoss
from seaice_mlflow.core.metrics import ScoreBoard
from seaice_mlflow.core.task import Head, TaskSpec
from seaice_mlflow.core.trainer import LoopSettings, Trainer, TrainingParts
from seaice_mlflow.models import Architecture, ModelSpec, Network, build_model, spec_from_options
from seaice_mlflow.models import spec as model_spec

#: A one-head task: water or ice per pixel of a 3-band photo.
TOY = TaskSpec("toy", (Head("MASK", ("water", "ice"), colours=("#0000FF", "#FFFFFF")),), ignore_index=255)


@dataclass(frozen=True)
class PointwiseOptions:
    """The toy architecture's options (filled from a ``--toy-width`` option)."""

    width: int = field(default=4, metadata={"option": "toy_width"})


class Pointwise(nn.Module):
    """1x1 convolutions only: a network that meets the :class:`Network` contract."""

    stride = 1

    def __init__(self, in_channels: int, outputs: dict[str, int], width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 1), nn.ReLU())
        self.heads = nn.ModuleDict({name: nn.Conv2d(width, k, 1) for name, k in outputs.items()})

    def forward(self, x):
        y = self.body(x)
        return {name: head(y) for name, head in self.heads.items()}


def with_pointwise(monkeypatch) -> None:
    """Register the toy architecture: one more entry of ``models.spec.architectures()``."""
    entries = model_spec.architectures()
    entry = Architecture("pointwise", PointwiseOptions, lambda c, outputs, o: Pointwise(c, outputs, o.width))
    monkeypatch.setattr(model_spec, "architectures", lambda: {**entries, "pointwise": entry})


def test_a_new_architecture_plugs_into_the_registry(monkeypatch):
    with_pointwise(monkeypatch)
    spec = spec_from_options("pointwise", 3, TOY.outputs(), {"toy_width": 6, "unet_filters": (8, 8)})
    assert spec.options == PointwiseOptions(6)
    assert ModelSpec.from_dict(spec.as_dict()) == spec
    network = build_model(spec)
    assert isinstance(network, Network) and network(torch.zeros(1, 3, 5, 7))["MASK"].shape == (1, 2, 5, 7)
    with pytest.raises(ValueError, match="pretrained: is an option of deeplabv3, not of pointwise"):
        spec_from_options("pointwise", 3, TOY.outputs(), {"pretrained": "resnet.pt"})


class Photos:
    """Batches of the toy task: ice where the first band is positive."""

    def __init__(self, size: int = 16, batch: int = 4):
        self.size, self.batch = size, batch

    def sample(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        image = torch.randn(self.batch, 3, self.size, self.size, generator=generator)
        mask = (image[:, 0] > 0).to(torch.uint8)
        mask[:, :2] = TOY.ignore_index  # unlabelled rows
        return {"image": image, "MASK": mask}

    def epoch(self, epoch, batches, skip=0, rank=0, world=1):
        generator = torch.Generator().manual_seed(epoch)
        return [self.sample(generator) for _ in range(batches)]


class ArrayTiles:
    def __init__(self, image: np.ndarray):
        self.image, self.shape = image, image.shape[1:]

    def read(self, window):
        return self.image[:, window.row : window.row + window.height, window.col : window.col + window.width]


def test_a_one_head_task_trains_validates_and_predicts_through_the_core(monkeypatch, tmp_path):
    with_pointwise(monkeypatch)
    torch.manual_seed(0)
    network = build_model(spec_from_options("pointwise", 3, TOY.outputs(), {"toy_width": 8}))
    held_out = Photos(24, 1).sample(torch.Generator().manual_seed(99))
    image, reference = held_out["image"][0].numpy(), held_out["MASK"][0].numpy()

    def validate():
        board = ScoreBoard(TOY)
        prediction = ChartPredictor([(network, TOY)], "cpu", TileOptions(16, 8, 2)).predict(ArrayTiles(image))
        board.add("photo-1", {"MASK": reference}, prediction.charts)
        return board.pooled()

    optimizer = torch.optim.AdamW(network.parameters(), lr=0.05)
    parts = TrainingParts(
        network,
        MultiTaskLoss(TOY),
        optimizer,
        torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=1),
        Photos(),
        TOY.names,
        validate,
        checkpoint_extras=lambda: {"task": TOY.name},
    )
    trainer = Trainer(parts, LoopSettings(tmp_path, epochs=2, batches_per_epoch=2, batch_size=4), torch.device("cpu"))
    reports = []
    state = trainer.fit(reports.append)
    assert state.epoch == 2 and [sorted(r.metrics) for r in reports][0] == sorted(
        ["train_loss", "train_loss_MASK", "lr", "patches_per_s", "val_MASK_f1", "val_combined"]
    )
    assert reports[-1].metrics["val_combined"] == reports[-1].metrics["val_MASK_f1"]
    assert load_checkpoint(tmp_path / LAST)["task"] == "toy" and (tmp_path / BEST).is_file()
    scores = validate()
    assert scores.pixels == {"MASK": int((reference != 255).sum())} and scores.combined > 50


def test_no_generic_module_names_a_chart_or_imports_a_task():
    """The core, the models and the tracking layer take a TaskSpec: none names SIC, SOD or FLOE, and
    none imports a task at module level (the tracking layer's alias for old models imports lazily)."""
    package = Path(seaice_mlflow.__file__).parent
    generic = [*package.glob("core/*.py"), *package.glob("models/*.py"), *package.glob("tracking/*.py")]
    assert len(generic) > 15
    for path in generic:
        tree = ast.parse(path.read_text())
        imported = [node.module for node in tree.body if isinstance(node, ast.ImportFrom)]
        imported += [alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names]
        assert not [m for m in imported if m and m.startswith(("seaice_mlflow.tasks", "seaice_mlflow.cli"))], path
        names = {
            node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
        assert not names & {"SIC", "SOD", "FLOE"}, path
