"""Optical models from MLflow model URIs: one mask model, an ensemble of them, or a floe detector.

An ensemble averages its members' class probabilities tile by tile (the anchor paper's ensemble
of PSPNet, DeepLabV3+ and UPerNet); its members must share the class table (names and label ids)
and the input scaling, and the first member's recipe speaks for it. Floe detectors are used one
at a time. The URIs MLflow resolves and how registry URIs are pinned:
:mod:`seaice_mlflow.tracking.model_refs`.
"""

from __future__ import annotations

from collections.abc import Sequence

from seaice_mlflow.core.engine import TileOptions, resolve_device
from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.core.lists import split_values
from seaice_mlflow.tasks.optical.config import OPTICAL_INFERENCE
from seaice_mlflow.tasks.optical.floes.pyfunc import FloeModel
from seaice_mlflow.tasks.optical.pyfunc import PhotoMaskModel
from seaice_mlflow.tracking.model_refs import ModelRef, load_python_model

OpticalModel = PhotoMaskModel | FloeModel
WHAT = "an optical model (logged by `seaice optical train`)"


def load_optical_models(
    uris: str | Sequence[str],
    device: str = OPTICAL_INFERENCE.device,
    tile: int = OPTICAL_INFERENCE.tile,
    overlap: int = OPTICAL_INFERENCE.overlap,
    probabilities: bool = False,
) -> tuple[OpticalModel, list[ModelRef]]:
    """The model behind the URI(s): a :class:`PhotoMaskModel` (an ensemble for several URIs) or a
    :class:`FloeModel`, and a :class:`ModelRef` per URI."""
    uris = split_values(uris)
    if not uris:
        raise ParameterError("model_uri", "no model URI given; pass e.g. --model-uri models:/seaice-optical@champion")
    torch_device = resolve_device(device)  # a clear error before loading
    config = {"device": torch_device.type, "tile": tile, "overlap": overlap, "probabilities": probabilities}
    loaded = [
        load_python_model(uri, (PhotoMaskModel, FloeModel), config, WHAT, seen=lambda m: m.recipe.seen_photos)
        for uri in uris
    ]
    models, refs = [m for m, _ in loaded], [r for _, r in loaded]
    floes = [uri for uri, m in zip(uris, models) if isinstance(m, FloeModel)]
    if floes and len(models) > 1:
        raise ParameterError("model_uri", f"{floes[0]} is a floe detector: floe detectors are not ensembled; "
                             "give one floe model, or mask models only")  # fmt: skip
    if len(models) == 1:
        return models[0], refs
    first = models[0]
    for uri, model in zip(uris[1:], models[1:]):
        own, theirs = first.recipe, model.recipe
        if (own.table.names, own.table.ids) != (theirs.table.names, theirs.table.ids):
            raise ParameterError("model_uri", f"{uri} predicts the classes {', '.join(theirs.table.names)} but "
                                 f"{uris[0]} predicts {', '.join(own.table.names)}; ensemble only models trained "
                                 "on one class table")  # fmt: skip
        if (own.mean, own.std) != (theirs.mean, theirs.std):
            raise ParameterError("model_uri", f"{uri} scales photos otherwise than {uris[0]} (mean and std of its "
                                 "recipe); ensemble only models of one input scaling")  # fmt: skip
    networks = [network for model in models for network in model.predictor.models]
    options = TileOptions(tile, overlap, first.predictor.options.batch, first.predictor.options.amp)
    ensemble = PhotoMaskModel().setup(first.recipe, networks, torch_device, options, probabilities)
    return ensemble, refs
