"""Logged models from MLflow model URIs, for any task: loading one, where it came from, run tags.

Any URI MLflow resolves works: ``runs:/<run>/model``, ``models:/m-<id>``, ``models:/NAME@alias``,
``models:/NAME/<version|stage|latest>``, a local model folder. A registry URI is pinned to the
version it names at load time (``models:/NAME/<version>``), so the model that is scored or
charts a scene is exactly the one recorded, even if the alias moves meanwhile.

A run that scores or applies models names them in its tags (:func:`model_tags`); a run that
scored data a model was trained or validated on says so (:func:`tag_seen`), and ``seaice
register`` does not rank models by it.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import mlflow
from mlflow.exceptions import MlflowException

from seaice_mlflow.core.errors import ParameterError, SeaIceError, first_line
from seaice_mlflow.tracking.runs import MODEL_ID_TAG, MODEL_URI_TAG, SCORED_ON_TRAINING_TAG

REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<suffix>[^/]+))$")
LOGGED_MODEL_ID = re.compile(r"^m-[0-9a-f]+$")
#: Tag of a logged model: the task family it predicts (``autoice``, ``optical``, ...); the
#: registry registers a model under a name of its own task only. Models without it are ``autoice``.
TASK_TAG = "seaice.task"
LEGACY_TASK = "autoice"
#: Tag of a run that loaded model(s) by registry name: ``NAME/<version>`` each (comma-separated).
REGISTERED_VERSION_TAG = "seaice.registered_model"
#: Tags of a register run: the version of the candidate (the experiment's best model), and the line
#: saying what happened to the champion.
REGISTERED_URI_TAG, OUTCOME_TAG = "seaice.registered_uri", "seaice.register_outcome"
#: How many items a warning names before "and N more".
SHOWN = 5

Model = TypeVar("Model")


@dataclass(frozen=True)
class ModelRef:
    """A model URI as given, and what it resolved to."""

    uri: str  # as given
    loaded_uri: str  # what was loaded (a registry URI pinned to its version)
    model_id: str | None = None  # MLflow 3 logged model id (m-...)
    run_id: str | None = None  # the run that logged (trained) the model
    name: str | None = None  # registered model name, when the URI names one
    version: str | None = None  # its version
    seen: frozenset[str] = frozenset()  # scenes or photos it was trained or validated on (its recipe)

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


def load_python_model(
    uri: str,
    kinds: type[Model] | tuple[type, ...],
    config: Mapping[str, object],
    what: str,
    seen: Callable[[Model], frozenset[str]] = lambda model: frozenset(),
) -> tuple[Model, ModelRef]:
    """The ``PythonModel`` behind ``uri`` (an instance of ``kinds``, loaded with ``config`` as its
    model_config) and its :class:`ModelRef`; ``what`` names the kind in the error for another model
    (e.g. "a seaice chart model (logged by `seaice train`)"), ``seen(model)`` what it was fitted on."""
    registered = registry_version(uri)
    loaded_uri = f"models:/{registered[0]}/{registered[1]}" if registered else uri
    try:
        pyfunc = mlflow.pyfunc.load_model(loaded_uri, model_config=dict(config))
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
    if not isinstance(model, kinds):
        raise ParameterError("model_uri", f"{uri} is not {what}")
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
        seen=seen(model),
    )
    return model, ref


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
        tags[REGISTERED_VERSION_TAG] = joined(f"{r.name}/{r.version}" if r.name else None for r in refs)
    return tags


def seen_among(refs: Sequence[ModelRef], keys: Iterable[str]) -> list[str]:
    """The keys (scene ids, photo digests) that some model of ``refs`` (any ensemble member) was
    trained or validated on."""
    seen = frozenset().union(*(ref.seen for ref in refs))
    return sorted(set(keys) & seen)


def tag_seen(seen: Sequence[str], total: int, noun: str, warn: Callable[[str], None]) -> None:
    """Tag the run with whether it scores ``noun`` ("scene", "photo") the model(s) were fitted on,
    count them (``eval_training_<noun>s``) and warn when it does."""
    mlflow.set_tags({SCORED_ON_TRAINING_TAG: str(bool(seen)).lower()})
    mlflow.log_metric(f"eval_training_{noun}s", len(seen))
    if seen:
        more = len(seen) - SHOWN
        named = ", ".join(seen[:SHOWN]) + (f" and {more} more" if more > 0 else "")
        warn(
            f"warning: {len(seen)} of the {total} {noun}(s) are training or validation {noun}s of the model "
            f"({named}): its test scores are optimistic and `seaice register` will not rank by this run; "
            f"evaluate on held-out test {noun}s"
        )


def log_test_metrics(metrics: Mapping[str, float], refs: Sequence[ModelRef]) -> None:
    """The pooled scores, linked to the logged model when a single one was scored (its page in
    the MLflow UI then lists them too)."""
    model_id = refs[0].model_id if len(refs) == 1 else None
    try:
        mlflow.log_metrics(dict(metrics), model_id=model_id)
    except MlflowException:
        if model_id is None:
            raise
        mlflow.log_metrics(dict(metrics))  # e.g. a model of another tracking server: the run has the scores
