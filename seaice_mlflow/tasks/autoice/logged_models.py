"""Chart models from MLflow model URIs: one or an ensemble, with where each came from
(the URIs MLflow resolves and how registry URIs are pinned: :mod:`seaice_mlflow.tracking.model_refs`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import mlflow

from seaice_mlflow.core.engine import TileOptions, resolve_device
from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.core.lists import split_values
from seaice_mlflow.tasks.autoice.ensemble import SceneCharter, combine
from seaice_mlflow.tracking.model_refs import ModelRef, load_python_model, model_tags
from seaice_mlflow.tracking.runs import model_label, plural, run_name, step_run


def load_model(uri: str, device: str, options: TileOptions):
    """The :class:`~seaice_mlflow.tasks.autoice.pyfunc.SeaIceChartModel` behind ``uri`` and its :class:`ModelRef`."""
    from seaice_mlflow.tasks.autoice.pyfunc import SeaIceChartModel

    config = {"device": device, "tile": options.tile, "overlap": options.overlap, "batch": options.batch,
              "amp": options.amp}  # fmt: skip
    return load_python_model(uri, SeaIceChartModel, config, "a seaice chart model (logged by `seaice train`)",
                             seen=lambda model: model.recipe.seen_scenes)  # fmt: skip


def load_charter(
    uris: Sequence[str], device: str = "auto", options: TileOptions = TileOptions()
) -> tuple[SceneCharter, list[ModelRef]]:
    """One model or the ensemble of several (probabilities averaged), ready to chart scenes."""
    uris = split_values(uris)
    if not uris:
        raise ParameterError("model_uri", "no model URI given; pass e.g. --model-uri models:/seaice-charts@champion")
    torch_device = resolve_device(device)  # a clear error before minutes of loading
    loaded = [load_model(uri, torch_device.type, options) for uri in uris]
    members = [(model.recipe, model.predictor.models[0]) for model, _ in loaded]
    charter = combine(members, torch_device, options, names=uris)
    return charter, [ref for _, ref in loaded]


@contextmanager
def charting_run(
    entry_point: str,
    uris: Sequence[str],
    device: str,
    options: TileOptions,
    params: Mapping[str, object],
    scenes: int,
) -> Iterator[tuple[mlflow.ActiveRun, SceneCharter, list[ModelRef]]]:
    """The run of a step that charts ``scenes`` scene files with model(s) (evaluate, predict), named
    after both: params (the model URIs, device and tiling besides ``params``) logged, the model(s)
    loaded and named in the run's tags."""
    with step_run(
        entry_point,
        {
            "model_uri": " ".join(uris),
            **params,
            "device": device,
            "tile": options.tile,
            "overlap": options.overlap,
            "batch": options.batch,
        },
        name=run_name(entry_point, model_label(uris), "on", plural(scenes, "scene")),
    ) as run:
        charter, refs = load_charter(uris, device, options)
        mlflow.set_tags(model_tags(refs))
        yield run, charter, refs
