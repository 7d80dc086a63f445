"""Chart models from MLflow model URIs: one or an ensemble, with where each came from.

Any URI MLflow resolves works: ``runs:/<run>/model``, ``models:/m-<id>``, ``models:/NAME@alias``,
``models:/NAME/<version|stage|latest>``, a local model folder. A registry URI is pinned to the
version it names at load time (``models:/NAME/<version>``), so the model that is scored or
charts a scene is exactly the one recorded, even if the alias moves meanwhile.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException

from seaice_mlflow.core.engine import TileOptions, resolve_device
from seaice_mlflow.core.errors import ParameterError, SeaIceError, first_line
from seaice_mlflow.tasks.autoice.ensemble import SceneCharter, combine
from seaice_mlflow.tasks.autoice.prediction import split_values
from seaice_mlflow.tracking.runs import MODEL_ID_TAG, MODEL_URI_TAG, step_run

#: Run tag of an evaluate run that scored scenes a model was trained or validated on ("true" or
#: "false"); ``seaice register`` does not rank models by such a run's test scores.
REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<suffix>[^/]+))$")
LOGGED_MODEL_ID = re.compile(r"^m-[0-9a-f]+$")


@dataclass(frozen=True)
class ModelRef:
    """A model URI as given, and what it resolved to."""

    uri: str  # as given
    loaded_uri: str  # what was loaded (a registry URI pinned to its version)
    model_id: str | None = None  # MLflow 3 logged model id (m-...)
    run_id: str | None = None  # the run that logged (trained) the model
    name: str | None = None  # registered model name, when the URI names one
    version: str | None = None  # its version
    seen_scenes: frozenset[str] = frozenset()  # scenes it was trained or validated on (its recipe)

    @property
    def canonical_uri(self) -> str:
        """``models:/m-...`` when the logged model is known (what the registry registers), else the URI."""
        return f"models:/{self.model_id}" if self.model_id else self.loaded_uri


def registry_version(uri: str) -> tuple[str, str] | None:
    """(name, version) a ``models:/NAME@alias`` or ``models:/NAME/<version|stage|latest>`` URI
    names now; None for other URIs (``models:/m-...``, ``runs:/``, paths)."""
    match = REGISTRY_URI.match(uri)
    if match is None or (match["suffix"] is None and match["alias"] is None):
        return None
    name, alias, suffix = match["name"], match["alias"], match["suffix"]
    client = mlflow.MlflowClient()
    try:
        if alias is not None:
            return name, str(client.get_model_version_by_alias(name, alias).version)
        if suffix.isdigit():
            return name, str(client.get_model_version(name, suffix).version)
        with warnings.catch_warnings():  # stages are deprecated since MLflow 2.9 but still served
            warnings.simplefilter("ignore", FutureWarning)
            stages = None if suffix.lower() == "latest" else [suffix]
            latest = client.get_latest_versions(name, stages)
    except MlflowException as err:
        raise ParameterError(
            "model_uri",
            f"{uri}: {first_line(err, 300)}; check the registered model name, "
            f"alias or stage (tracking URI {mlflow.get_tracking_uri()})",
        ) from None
    if not latest:
        raise ParameterError(
            "model_uri",
            f"{uri}: registered model {name} has no version"
            + ("" if stages is None else f" in stage {suffix}")
            + "; register or promote one first",
        )
    return name, str(max(int(v.version) for v in latest))


def load_model(uri: str, device: str, options: TileOptions):
    """The :class:`~seaice_mlflow.tasks.autoice.pyfunc.SeaIceChartModel` behind ``uri`` and its :class:`ModelRef`."""
    from seaice_mlflow.tasks.autoice.pyfunc import SeaIceChartModel

    registered = registry_version(uri)
    loaded_uri = f"models:/{registered[0]}/{registered[1]}" if registered else uri
    config = {
        "device": device,
        "tile": options.tile,
        "overlap": options.overlap,
        "batch": options.batch,
        "amp": options.amp,
    }
    try:
        pyfunc = mlflow.pyfunc.load_model(loaded_uri, model_config=config)
    except SeaIceError:  # ours (an interrupt, a recipe refused) as they are
        raise
    except Exception as err:  # MLflow, the file system, a folder that holds no valid MLmodel
        raise ParameterError(
            "model_uri",
            f"{uri} cannot be loaded ({first_line(err, 300)}); give a model URI such "
            "as runs:/<run id>/model, models:/m-<id> or models:/<name>@champion, and check "
            f"MLFLOW_TRACKING_URI (now {mlflow.get_tracking_uri()})",
        ) from None
    model = pyfunc.unwrap_python_model() if hasattr(pyfunc, "unwrap_python_model") else None
    if not isinstance(model, SeaIceChartModel):
        raise ParameterError("model_uri", f"{uri} is not a seaice chart model (logged by `seaice train`)")
    meta = pyfunc.metadata
    model_id = getattr(meta, "model_id", None)
    if model_id is None and LOGGED_MODEL_ID.match(loaded_uri.removeprefix("models:/")):
        model_id = loaded_uri.removeprefix("models:/")
    ref = ModelRef(
        uri=uri,
        loaded_uri=loaded_uri,
        model_id=model_id,
        run_id=getattr(meta, "run_id", None),
        name=registered[0] if registered else None,
        version=registered[1] if registered else None,
        seen_scenes=model.recipe.seen_scenes,
    )
    return model, ref


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
    entry_point: str, uris: Sequence[str], device: str, options: TileOptions, params: Mapping[str, object]
) -> Iterator[tuple[mlflow.ActiveRun, SceneCharter, list[ModelRef]]]:
    """The run of a step that charts scenes with model(s) (evaluate, predict): params (the model URIs,
    device and tiling besides ``params``) logged, the model(s) loaded and named in the run's tags."""
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
    ) as run:
        charter, refs = load_charter(uris, device, options)
        mlflow.set_tags(model_tags(refs))
        yield run, charter, refs


def seen_scenes_among(refs: Sequence[ModelRef], scene_ids: Iterable[str]) -> list[str]:
    """The scene ids that some model of ``refs`` (any ensemble member) was trained or validated on."""
    seen = frozenset().union(*(ref.seen_scenes for ref in refs))
    return sorted(set(scene_ids) & seen)


def model_tags(refs: Sequence[ModelRef]) -> dict[str, str]:
    """Run tags naming the model(s): URIs as given and resolved, logged model ids, source runs,
    registered name/version. ``seaice.model_uri`` holds the ``models:/m-...`` URI(s), which
    ``seaice register`` can register."""

    def joined(values: Iterable[str | None]) -> str:
        return ",".join(v or "unknown" for v in values)

    tags = {
        MODEL_URI_TAG: joined(r.canonical_uri for r in refs),
        "seaice.model_uri_given": joined(r.uri for r in refs),
        "seaice.ensemble_size": str(len(refs)),
    }
    if any(r.model_id for r in refs):
        tags[MODEL_ID_TAG] = joined(r.model_id for r in refs)
    if any(r.run_id for r in refs):
        tags["seaice.source_run"] = joined(r.run_id for r in refs)
    if any(r.name for r in refs):
        tags["seaice.registered_model"] = joined(f"{r.name}/{r.version}" if r.name else None for r in refs)
    return tags
