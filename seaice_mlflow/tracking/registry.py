"""Model Registry promotion: the best model becomes the champion (alias and legacy stage).

Scores of a model
    A metric of the FINISHED run that trained it (``best_val_combined``), else the best value
    among the FINISHED ``evaluate`` (or ``optical_evaluate``) runs of that model alone
    (``test_combined``; an ensemble's score is no single model's). Evaluate runs that scored
    scenes or photos the model was trained or validated on (tag
    ``seaice.scored_on_training_scenes=true``) are ignored. A model whose training run was deleted
    (in the trash, or removed for good by ``mlflow gc``) has no scores: its evaluations do not count,
    and its versions are left out of the ranking (named in the message), so they neither keep the
    alias nor make ``register`` fail.

Ranking: models are compared on a metric they all have
    With ``--metric auto`` the ranking metric is ``test_combined`` when every model compared has
    one, else ``best_val_combined`` (among the models that have it): evaluating only a worse
    model never ranks it above a better one that was not evaluated. ``--metric NAME`` ranks by
    NAME among the models that have it. Ties go to the older version (the model found first).

Candidate
    The experiment's best model by that rule, among the models of its FINISHED runs (the models
    training runs logged and the models evaluate runs scored) of the task family asked for (the
    logged model's tag ``seaice.task``: ``autoice`` SAR charts, ``optical`` photo masks, ...), so
    one experiment may hold several tasks' models and each name only gets its own task's. A
    model whose weights are not all finite is skipped, with a note, and the next one is taken.

Champion
    *Derived* from the registry: the alias points at the best version by the same rule applied
    to every version of the registered model; versions with non-finite weights never count
    (checked once per version, tag ``seaice.weights_finite``). Every call ends by reconciling the
    alias (and the mirrored ``Production`` stage) with that rule and re-reading until stable, so
    concurrent calls converge on one champion, the best one. ``force`` promotes the candidate
    regardless; the next call without it applies the rule again.

Idempotent, also under concurrency
    A model has one version: an existing version of the model is reused; when concurrent calls
    registered the same model more than once, the lowest version is kept and each call deletes
    the higher version it created. Writes that collide in the store (unique constraint, locked
    database) are retried.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import mlflow
import torch
from mlflow.entities import Experiment, LifecycleStage
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from seaice_mlflow.core.checkpoint import non_finite_weights
from seaice_mlflow.core.defaults import STAGES
from seaice_mlflow.core.errors import SeaIceError, first_line
from seaice_mlflow.tracking.model_refs import LEGACY_TASK, TASK_TAG
from seaice_mlflow.tracking.runs import MODEL_ID_TAG, SCORED_ON_TRAINING_TAG, WEIGHTS_ARTIFACT

AUTO = "auto"
EVALUATION_METRIC, TRAINING_METRIC = "test_combined", "best_val_combined"
#: ``--metric auto``: the first of these that every model compared has decides.
AUTO_METRICS = (EVALUATION_METRIC, TRAINING_METRIC)
Stage = Literal["Production", "Staging", "none"]  # config.STAGES, the --stage choices
RECONCILE_ROUNDS = 5
WRITE_ATTEMPTS = 8
#: Store errors of concurrent writers, worth a retry (sqlite, PostgreSQL/MySQL wording).
COLLISIONS = ("unique constraint", "integrityerror", "duplicate key", "duplicate entry", "database is locked")
WEIGHTS_FINITE_TAG = "seaice.weights_finite"
RETRAIN = "it diverged: train it again (e.g. with a lower --lr)"
SOURCE_RUN_TAG = "seaice.source_run"
#: Entry points whose runs score a model on held-out data (``test_combined``).
EVALUATE_ENTRY_POINTS = ("evaluate", "optical_evaluate")

Key = TypeVar("Key", bound=Hashable)
T = TypeVar("T")


class RegistryError(SeaIceError):
    """Nothing to register, or the registry refuses."""


@dataclass(frozen=True)
class Score:
    value: float
    run_id: str  # the run that logged it


Scores = dict[str, Score]  # metric -> score


@dataclass(frozen=True)
class Ranking(Generic[Key]):
    """Models (or versions) best first by ``metric``, the first metric of the preference they all have."""

    metric: str
    order: list[Key]
    scores: Mapping[Key, Scores]
    lacking: Mapping[str, list[Key]]  # each preferred metric passed over -> who lacks it

    @property
    def best(self) -> Key | None:
        return self.order[0] if self.order else None

    def value(self, key: Key | None) -> float | None:
        score = self.scores.get(key, {}).get(self.metric)
        return None if score is None else score.value

    def reason(self, label: Callable[[Key], str]) -> str:
        """What decided, e.g. "ranked by best_val_combined (version 1 has no test_combined)"."""
        gaps = [
            f"{', '.join(label(k) for k in keys[:3])}{' ...' if len(keys) > 3 else ''} "
            f"{'has' if len(keys) == 1 else 'have'} no {metric}"
            for metric, keys in self.lacking.items()
        ]
        return f"ranked by {self.metric}" + (f" ({'; '.join(gaps)})" if gaps else "")


def rank(scores: Mapping[Key, Scores], preference: Sequence[str]) -> Ranking[Key]:
    """Rank by the first metric of ``preference`` that every scored key has (else the last one,
    among the keys that have it); the order of ``scores`` breaks ties."""
    scored = [k for k, s in scores.items() if any(m in s for m in preference)]
    metric = next((m for m in preference if all(m in scores[k] for k in scored)), preference[-1])
    order = sorted((k for k in scored if metric in scores[k]), key=lambda k: -scores[k][metric].value)
    passed = preference[: preference.index(metric)]
    return Ranking(metric, order, scores, {m: [k for k in scored if m not in scores[k]] for m in passed})


def preference_of(metric: str) -> tuple[str, ...]:
    return AUTO_METRICS if metric == AUTO else (metric,)


def retrying(write: Callable[[], T]) -> T:
    """``write()``, retried with a growing random pause while it collides with a concurrent writer."""
    for attempt in range(WRITE_ATTEMPTS - 1):
        try:
            return write()
        except MlflowException as err:
            if not any(collision in str(err).lower() for collision in COLLISIONS):
                raise
            time.sleep(random.uniform(0.05, 0.1) * 2**attempt)
    return write()


def find_experiment(name: str) -> Experiment:
    """The experiment named ``name``; a clear error (creating nothing) when there is none."""
    found = mlflow.get_experiment_by_name(name)
    if found is None:
        raise RegistryError(
            f"option --experiment: no experiment named {name!r} in {mlflow.get_tracking_uri()}; "
            "check the name or MLFLOW_TRACKING_URI"
        )
    return found


def training_run(model_id: str) -> str | None:
    """The run that logged the model ``model_id``; None when the logged model is gone."""
    try:
        return mlflow.get_logged_model(model_id).source_run_id
    except MlflowException:
        return None


def deleted_run(run_id: str | None) -> bool:
    """Whether the run ``run_id`` was deleted: in the trash, or removed for good by ``mlflow gc``."""
    if not run_id:
        return False
    try:
        return mlflow.get_run(run_id).info.lifecycle_stage == LifecycleStage.DELETED
    except MlflowException as err:
        if err.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return True
        raise


def model_scores(model_id: str, metrics: Sequence[str]) -> Scores:
    """The model's scores (see the module doc): its training run's, else its best clean evaluation's;
    none when its training run was deleted."""
    source = training_run(model_id)  # None: the logged model was deleted, its evaluations remain
    if deleted_run(source):
        return {}
    evaluations = mlflow.search_runs(
        search_all_experiments=True,
        output_format="list",
        filter_string=f"attributes.status = 'FINISHED' and tags.`{MODEL_ID_TAG}` = '{model_id}'",
    )
    scores: Scores = {}
    for run in evaluations:
        tags = run.data.tags
        if tags.get("seaice.entry_point") not in EVALUATE_ENTRY_POINTS or tags.get(SCORED_ON_TRAINING_TAG) == "true":
            continue
        for metric in metrics:
            value = run.data.metrics.get(metric, math.nan)
            if math.isfinite(value) and (metric not in scores or value > scores[metric].value):
                scores[metric] = Score(float(value), run.info.run_id)
    trained = mlflow.get_run(source) if source else None
    if trained is not None and trained.info.status == "FINISHED":
        scores |= {
            m: Score(float(trained.data.metrics[m]), source)
            for m in metrics
            if math.isfinite(trained.data.metrics.get(m, math.nan))
        }
    return scores


def model_task(model_id: str) -> str | None:
    """The task family of a logged model (its ``seaice.task`` tag; ``autoice`` for models logged
    before the tag existed), None when the model is gone."""
    try:
        return mlflow.get_logged_model(model_id).tags.get(TASK_TAG, LEGACY_TASK)
    except MlflowException:
        return None


def experiment_models(experiment_id: str, task: str = LEGACY_TASK) -> list[str]:
    """Logged model ids of ``task`` from the experiment's FINISHED runs, and of single models of
    ``task`` its clean evaluate runs scored (first seen first)."""
    runs = mlflow.search_runs(
        [experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        output_format="list",
        order_by=["attributes.start_time ASC"],
    )
    finished = {run.info.run_id for run in runs}
    logged = mlflow.search_logged_models(experiment_ids=[experiment_id], output_format="list")
    ids = [
        m.model_id
        for m in sorted(logged, key=lambda m: m.creation_timestamp)
        if m.source_run_id in finished and m.tags.get(TASK_TAG, LEGACY_TASK) == task
    ]
    for run in runs:
        tags = run.data.tags
        if (
            tags.get("seaice.entry_point") in EVALUATE_ENTRY_POINTS
            and tags.get(SCORED_ON_TRAINING_TAG) != "true"
            and "," not in tags.get(MODEL_ID_TAG, ",")
            and tags[MODEL_ID_TAG] not in ids
            and model_task(tags[MODEL_ID_TAG]) == task
        ):
            ids.append(tags[MODEL_ID_TAG])
    return list(dict.fromkeys(ids))


def model_id_of(version: ModelVersion) -> str | None:
    """The logged model (m-...) a version holds, if it holds one."""
    model_id = getattr(version, "model_id", None)
    if model_id:
        return model_id
    source = version.source or ""
    return source.removeprefix("models:/") if source.startswith("models:/m-") else None


def weights_problem(model_uri: str) -> str | None:
    """Why the model's weights are unusable ("has non-finite weights (...)"), or None when they
    are all finite; a :class:`RegistryError` when they cannot be read now. Downloads only MLmodel
    and the weights."""
    try:
        base = (
            mlflow.get_logged_model(model_uri.removeprefix("models:/")).artifact_location
            if model_uri.startswith("models:/m-")
            else model_uri
        )
        with tempfile.TemporaryDirectory(prefix="seaice-register-") as tmp:
            meta = Model.load(mlflow.artifacts.download_artifacts(artifact_uri=f"{base}/MLmodel", dst_path=tmp))
            path = meta.flavors.get("python_function", {}).get("artifacts", {}).get(WEIGHTS_ARTIFACT, {}).get("path")
            if path is None:
                return "it has no weights artifact: not a seaice chart model"
            state = torch.load(
                mlflow.artifacts.download_artifacts(artifact_uri=f"{base}/{path}", dst_path=tmp),
                map_location="cpu",
                weights_only=True,
            )
    except (MlflowException, OSError, RuntimeError) as err:
        raise RegistryError(f"the weights of {model_uri} cannot be read ({first_line(err, 200)})") from None
    bad = non_finite_weights(state)
    return (
        f"it has non-finite weights ({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}); {RETRAIN}" if bad else None
    )


def versions_of(client: mlflow.MlflowClient, name: str) -> list[ModelVersion]:
    """Every version of ``name``, oldest first (none when the name is not registered yet)."""
    try:
        found = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return []
    return sorted(found, key=lambda v: int(v.version))


@dataclass(frozen=True)
class Candidate:
    model_id: str
    metric: str  # what ranked it in its experiment
    scores: Scores

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_id}"

    @property
    def value(self) -> float:
        return self.scores[self.metric].value


def best_candidate(
    client: mlflow.MlflowClient, name: str, experiment: Experiment, preference: Sequence[str], task: str = LEGACY_TASK
) -> tuple[Candidate, list[str]]:
    """The experiment's best model of ``task`` with finite weights, and a note per better one skipped."""
    models = experiment_models(experiment.experiment_id, task)
    ranking = rank({m: model_scores(m, preference) for m in models}, preference)
    checked = {model_id_of(v): v.tags.get(WEIGHTS_FINITE_TAG) for v in versions_of(client, name)}
    skipped = []
    for model_id in ranking.order:
        tag = checked.get(model_id)  # a version of it was checked before
        try:
            problem = (
                weights_problem(f"models:/{model_id}")
                if tag is None
                else None
                if tag == "true"
                else f"it has non-finite weights; {RETRAIN}"
            )
        except RegistryError as err:
            problem = f"{err}; check the artifact store and register again"
        if problem is None:
            return Candidate(model_id, ranking.metric, ranking.scores[model_id]), skipped
        skipped.append(f"skipped models:/{model_id} ({ranking.metric} {ranking.value(model_id):.3f}): {problem}")
    left_out = f" ({len(skipped)} with unusable weights left out)" if skipped else ""
    raise RegistryError(
        f"no FINISHED run with metric {' or '.join(preference)} and a usable logged {task} model in "
        f"experiment {experiment.name!r}{left_out}; train (and evaluate) a model first"
        + ("" if task == LEGACY_TASK else f" (or check --task, now {task})")
    )


def register_version(client: mlflow.MlflowClient, name: str, model_uri: str) -> ModelVersion:
    """The one version of ``name`` holding the model: existing, or newly registered. Concurrent
    calls may register it more than once: the lowest version stays, each deletes its own others."""
    model_id = model_uri.removeprefix("models:/")
    holding = [v for v in versions_of(client, name) if model_id_of(v) == model_id]
    if holding:
        return holding[0]
    created = retrying(lambda: mlflow.register_model(model_uri, name))
    keep = min((v for v in versions_of(client, name) if model_id_of(v) == model_id), key=lambda v: int(v.version))
    if keep.version != created.version:
        retrying(lambda: client.delete_model_version(name, created.version))
    return keep


def metric_tag(metric: str) -> str:
    return f"seaice.metric.{metric}"


def tag_version(client: mlflow.MlflowClient, name: str, version: str, candidate: Candidate) -> None:
    """Scores, provenance and the weights check on the version; a one-line description."""
    source_run = mlflow.get_logged_model(candidate.model_id).source_run_id
    source_tags = mlflow.get_run(source_run).data.tags if source_run else {}
    tags = {
        **{metric_tag(m): str(s.value) for m, s in candidate.scores.items()},
        "seaice.metric": candidate.metric,
        "seaice.metric_value": str(candidate.value),
        SOURCE_RUN_TAG: source_run or "unknown",
        "seaice.scored_by_run": candidate.scores[candidate.metric].run_id,
        "seaice.store_digest": source_tags.get("seaice.store_digest", "unknown"),
        "seaice.git_commit": source_tags.get(
            "seaice.git_commit", source_tags.get("mlflow.source.git.commit", "unknown")
        ),
        WEIGHTS_FINITE_TAG: "true",
    }
    for key, value in tags.items():
        retrying(lambda: client.set_model_version_tag(name, version, key, value))
    retrying(
        lambda: client.update_model_version(
            name,
            version,
            description=(
                f"{candidate.metric} = {candidate.value:.3f}; trained in run {source_run} on store "
                f"{tags['seaice.store_digest'][:12]}; registered by seaice register"
            ),
        )
    )


def version_scores(
    client: mlflow.MlflowClient, name: str, preference: Sequence[str]
) -> tuple[dict[str, Scores], dict[str, str]]:
    """Scores of the versions of ``name`` that may be champion (finite weights), oldest first, and the
    versions left out because their training run was deleted (version -> run id)."""
    scores, deleted = {}, {}
    for listed in versions_of(client, name):
        try:
            version = client.get_model_version(name, listed.version)
        except MlflowException:  # deleted meanwhile: a concurrent call's duplicate
            continue
        model_id = model_id_of(version)
        run_id = (training_run(model_id) if model_id else None) or version.run_id or version.tags.get(SOURCE_RUN_TAG)
        if deleted_run(run_id):
            deleted[version.version] = run_id
            continue
        finite = version.tags.get(WEIGHTS_FINITE_TAG)
        if finite is None:
            try:
                finite = "false" if weights_problem(version.source) else "true"
            except RegistryError:  # unreadable now (a network error?): not champion this time, checked again later
                continue
            retrying(lambda: client.set_model_version_tag(name, version.version, WEIGHTS_FINITE_TAG, finite))
        if finite != "true":
            continue
        found = model_scores(model_id, preference) if model_id else {}
        for metric in preference:  # versions whose logged model is gone keep the scores they were tagged with
            if metric not in found and metric_tag(metric) in version.tags:
                found[metric] = Score(float(version.tags[metric_tag(metric)]), version.tags.get(SOURCE_RUN_TAG, ""))
        scores[version.version] = found
    return scores, deleted


def champion_version(client: mlflow.MlflowClient, name: str, alias: str) -> str | None:
    try:
        return client.get_model_version_by_alias(name, alias).version
    except MlflowException:
        return None


def promote(client: mlflow.MlflowClient, name: str, version: str, alias: str, stage: Stage) -> None:
    """Point ``alias`` at ``version`` and mirror it to the legacy stage (archiving the previous one)."""
    retrying(lambda: client.set_registered_model_alias(name, alias, version))
    if stage != "none":
        with warnings.catch_warnings():  # stages are deprecated since MLflow 2.9 but still served
            warnings.simplefilter("ignore", FutureWarning)
            if client.get_model_version(name, version).current_stage != stage:
                retrying(
                    lambda: client.transition_model_version_stage(name, version, stage, archive_existing_versions=True)
                )


@dataclass(frozen=True)
class Promotion:
    name: str
    version: str  # the candidate's version
    metric: str  # the metric that decided
    value: float | None  # the candidate's value of it
    champion: str  # version the alias points at afterwards
    promoted: bool  # the candidate is the champion
    message: str
    skipped: tuple[str, ...] = ()  # one line per better model left out (non-finite weights)


def register_best(
    experiment: str,
    name: str,
    metric: str = AUTO,
    alias: str = "champion",
    stage: Stage = "Production",
    force: bool = False,
    task: str = LEGACY_TASK,
) -> Promotion:
    """Register the experiment's best model of ``task`` under ``name`` and make the best version
    champion (the rules are in the module doc)."""
    if stage not in STAGES:
        raise RegistryError(f"option --stage: {stage!r} is not one of {', '.join(STAGES)}")
    found = find_experiment(experiment)
    preference = preference_of(metric)
    client = mlflow.MlflowClient()
    candidate, skipped = best_candidate(client, name, found, preference, task)
    version = register_version(client, name, candidate.model_uri).version
    tag_version(client, name, version, candidate)
    if force:
        promote(client, name, version, alias, stage)
        return Promotion(
            name,
            version,
            candidate.metric,
            candidate.value,
            version,
            True,
            f"version {version} ({candidate.metric} {candidate.value:.3f}) forced to {alias}",
            tuple(skipped),
        )
    previous = champion_version(client, name, alias)
    for _ in range(RECONCILE_ROUNDS):  # converge with concurrent register calls
        scores, deleted = version_scores(client, name, preference)
        ranking = rank(scores, preference)
        target = ranking.best or version
        if champion_version(client, name, alias) == target:
            break
        promote(client, name, target, alias, stage)
    champion = champion_version(client, name, alias)
    return Promotion(
        name,
        version,
        ranking.metric,
        ranking.value(version),
        champion,
        champion == version,
        promotion_message(ranking, version, previous, champion, alias, deleted),
        tuple(skipped),
    )


def promotion_message(
    ranking: Ranking[str],
    version: str,
    previous: str | None,
    champion: str | None,
    alias: str,
    deleted: Mapping[str, str],
) -> str:
    """One line: the outcome, the values compared, the metric that decided and the versions left out
    because their run was deleted."""

    def described(v: str | None) -> str:
        if v in deleted:
            return f"version {v}"
        value = ranking.value(v)
        return f"version {v} ({ranking.metric} {'none' if value is None else f'{value:.3f}'})"

    reason = ranking.reason(lambda v: f"version {v}")
    left_out = "".join(f"; version {v} left out: its run {run} was deleted" for v, run in deleted.items())
    if champion == version:
        replaced = f", replacing {described(previous)}" if previous and previous != version else ""
        return f"{described(version)} is {alias}{replaced}; {reason}{left_out}"
    return (
        f"{described(version)} does not beat {alias} {described(champion)}; {alias} unchanged, {reason} "
        f"(use --force to promote it anyway){left_out}"
    )
