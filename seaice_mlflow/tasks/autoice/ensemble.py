"""One model or an ensemble of logged models, ready to chart whole scenes on their 80 m grid.

Ensemble members must see a scene alike (same input variables in the same order, same working
grid); their probabilities, each at its recipe's temperatures, are averaged by
:class:`~seaice_mlflow.core.engine.ChartPredictor`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch

from seaice_mlflow.core.engine import ChartPrediction, ChartPredictor, Member, TileOptions
from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.tasks.autoice.grid import SceneSource
from seaice_mlflow.tasks.autoice.recipe import Recipe
from seaice_mlflow.tasks.autoice.sources import SceneTiles


@dataclass
class SceneCharter:
    """A predictor and the recipe its members share (inputs, working grid); ``layers``: the
    uncertainty layer kinds that ``uncertainty=True`` asks for (None: those of the products)."""

    recipe: Recipe
    predictor: ChartPredictor
    layers: Collection[str] | None = None

    @property
    def sic_value(self) -> bool:
        """SIC is predicted as a value (some member regresses it), not as class probabilities."""
        return "SIC" in self.predictor.values

    def predict_scene(
        self, scene: SceneSource, with_scores: bool = False, progress: bool = False, uncertainty: bool = False
    ) -> ChartPrediction:
        """Charts (and scores, uncertainty layers) of a whole scene on its 80 m grid, read tile by tile."""
        tiles = SceneTiles(scene, self.recipe.variables, self.recipe.downsample)
        layers = (True if self.layers is None else self.layers) if uncertainty else False
        prediction = self.predictor.predict(tiles, with_scores, progress=progress, uncertainty=layers)
        return prediction.upsampled(self.recipe.downsample, tuple(scene.full_shape))


def combine(
    members: Sequence[tuple[Recipe, torch.nn.Module]],
    device: str | torch.device = "auto",
    options: TileOptions = TileOptions(),
    names: Sequence[str] | None = None,
) -> SceneCharter:
    """A :class:`SceneCharter` of one or more (recipe, network) pairs.

    ``names`` (e.g. the model URIs) label the members in errors. Every recipe must have the
    first one's input variables and downsampling, and the package's normalisation.
    """
    if not members:
        raise ParameterError("model_uri", "no model given; pass at least one MLflow model URI")
    names = list(names) if names is not None else [f"model {i + 1}" for i in range(len(members))]
    first, first_name = members[0][0], names[0]
    for (recipe, _), name in zip(members, names):
        try:
            recipe.check_normalisation()
        except ValueError as err:
            raise ParameterError("model_uri", f"{name}: {err}") from None
        if recipe.variables != first.variables:
            raise ParameterError(
                "model_uri",
                f"{name} takes inputs {','.join(recipe.variables)} but {first_name} "
                f"takes {','.join(first.variables)}; ensemble only models trained on the same "
                "--variables",
            )
        if recipe.downsample != first.downsample:
            raise ParameterError(
                "model_uri",
                f"{name} works at downsample x{recipe.downsample} but {first_name} "
                f"at x{first.downsample}; ensemble only models trained on stores of the same "
                "--downsample",
            )
    predictor = ChartPredictor(
        [Member(network, recipe.task, recipe.temperatures) for recipe, network in members], device, options
    )
    return SceneCharter(first, predictor)
