"""Model Registry promotion: the best run's model becomes the champion (alias and legacy stage).

* Candidates are FINISHED runs of an experiment ranked by a metric: ``test_combined`` of
  ``evaluate`` runs when there are any, else ``best_val_combined`` of ``train`` runs. The model
  is the run's logged model (MLflow 3 logged-model API), or the one an evaluate run scored.
* A model already registered under the name is reused (registering is idempotent).
* The champion is *derived*: the alias points at the registered version with the best value of
  the metric. Every call ends by reconciling the alias (and the mirrored ``Production`` stage)
  with that rule and re-reading until stable, so two concurrent calls converge on one champion,
  the best one. ``force`` promotes the candidate regardless.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from seaice_mlflow.errors import SeaIceError
from seaice_mlflow.tracking.runs import MODEL_URI_TAG

AUTO = "auto"
EVALUATION_METRIC, TRAINING_METRIC = "test_combined", "best_val_combined"
STAGES = ("Production", "Staging", "none")
RECONCILE_ROUNDS = 5


class RegistryError(SeaIceError):
    """Nothing to register, or the registry refuses."""


@dataclass(frozen=True)
class Candidate:
    run_id: str  # the run that produced the metric
    metric: str
    value: float
    model_uri: str  # models:/m-...
    source_run_id: str  # the run that trained the model
    tags: dict[str, str]


@dataclass(frozen=True)
class Promotion:
    name: str
    version: str
    metric: str
    value: float
    champion: str  # version the alias points at afterwards
    promoted: bool  # the candidate is the champion
    message: str


def choose_metric(experiment_id: str) -> str:
    """``test_combined`` when the experiment has finished evaluate runs, else ``best_val_combined``."""
    runs = mlflow.search_runs([experiment_id], filter_string=f"attributes.status = 'FINISHED' and "
                              f"metrics.{EVALUATION_METRIC} > -1e308", max_results=1, output_format="list")
    return EVALUATION_METRIC if runs else TRAINING_METRIC


def logged_model_of(run_id: str) -> str | None:
    """The ``models:/m-...`` URI of the model a run logged, if any."""
    models = mlflow.search_logged_models(filter_string=f"source_run_id = '{run_id}'", output_format="list")
    return models[0].model_uri if models else None


def best_candidate(experiment_id: str, metric: str) -> Candidate:
    """The FINISHED run with the highest ``metric`` that names a registrable model."""
    runs = mlflow.search_runs([experiment_id], filter_string=f"attributes.status = 'FINISHED' and "
                              f"metrics.{metric} > -1e308", order_by=[f"metrics.{metric} DESC"],
                              output_format="list")
    for run in runs:
        tags = run.data.tags
        model_uri = logged_model_of(run.info.run_id)
        if model_uri is None and MODEL_URI_TAG in tags and "," not in tags[MODEL_URI_TAG]:
            model_uri = tags[MODEL_URI_TAG]  # an evaluate run of one model
        if model_uri is None:
            continue
        source = mlflow.get_logged_model(model_uri.split("/")[-1]).source_run_id \
            if model_uri.startswith("models:/m-") else run.info.run_id
        return Candidate(run.info.run_id, metric, float(run.data.metrics[metric]), model_uri, source, tags)
    raise RegistryError(f"no FINISHED run with metric {metric} and a logged model in experiment {experiment_id}; "
                        "train (and evaluate) a model first")


def metric_tag(metric: str) -> str:
    return f"seaice.metric.{metric}"


def register_version(client: mlflow.MlflowClient, name: str, candidate: Candidate) -> ModelVersion:
    """The version of ``name`` holding the candidate's model: existing, or newly registered."""
    model_id = candidate.model_uri.split("/")[-1]
    try:
        existing = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        existing = []
    for version in existing:
        if getattr(version, "model_id", None) == model_id or version.source == candidate.model_uri:
            return version
    return mlflow.register_model(candidate.model_uri, name)


def tag_version(client: mlflow.MlflowClient, name: str, version: str, candidate: Candidate) -> None:
    source_tags = mlflow.get_run(candidate.source_run_id).data.tags
    tags = {metric_tag(candidate.metric): str(candidate.value), "seaice.metric": candidate.metric,
            "seaice.metric_value": str(candidate.value), "seaice.source_run": candidate.source_run_id,
            "seaice.scored_by_run": candidate.run_id,
            "seaice.store_digest": source_tags.get("seaice.store_digest", "unknown"),
            "seaice.git_commit": source_tags.get("seaice.git_commit", source_tags.get("mlflow.source.git.commit",
                                                                                         "unknown"))}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.update_model_version(name, version, description=(
        f"{candidate.metric} = {candidate.value:.3f}; trained in run {candidate.source_run_id} on store "
        f"{tags['seaice.store_digest'][:12]}; registered by seaice register"))


def version_metric(client: mlflow.MlflowClient, name: str, version: ModelVersion, metric: str) -> float | None:
    """A version's value of ``metric``: its tag, else its training run's metric."""
    full = client.get_model_version(name, version.version)
    if metric_tag(metric) in full.tags:
        return float(full.tags[metric_tag(metric)])
    run_id = full.tags.get("seaice.source_run") or full.run_id
    value = mlflow.get_run(run_id).data.metrics.get(metric) if run_id else None
    return None if value is None else float(value)


def champion_version(client: mlflow.MlflowClient, name: str, alias: str) -> str | None:
    try:
        return client.get_model_version_by_alias(name, alias).version
    except MlflowException:
        return None


def best_version(client: mlflow.MlflowClient, name: str, metric: str) -> tuple[str, float] | None:
    """The registered version with the highest ``metric`` (ties: the older version)."""
    scored = []
    for version in client.search_model_versions(f"name = '{name}'"):
        value = version_metric(client, name, version, metric)
        if value is not None:
            scored.append((value, -int(version.version), version.version))
    if not scored:
        return None
    value, _, version = max(scored)
    return version, value


def promote(client: mlflow.MlflowClient, name: str, version: str, alias: str, stage: str) -> None:
    """Point ``alias`` at ``version`` and mirror it to the legacy stage (archiving the previous one)."""
    client.set_registered_model_alias(name, alias, version)
    if stage != "none":
        with warnings.catch_warnings():  # stages are deprecated since MLflow 2.9 but still served
            warnings.simplefilter("ignore", FutureWarning)
            current = client.get_model_version(name, version).current_stage
            if current != stage:
                client.transition_model_version_stage(name, version, stage, archive_existing_versions=True)


def register_best(experiment: str, name: str, metric: str = AUTO, alias: str = "champion",
                  stage: str = "Production", force: bool = False) -> Promotion:
    """Register the experiment's best model under ``name`` and make the best version champion."""
    if stage not in STAGES:
        raise RegistryError(f"parameter stage: {stage!r} is not one of {', '.join(STAGES)}")
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        raise RegistryError(f"parameter experiment: no experiment named {experiment!r} in "
                            f"{mlflow.get_tracking_uri()}; check the name or MLFLOW_TRACKING_URI")
    metric = choose_metric(found.experiment_id) if metric == AUTO else metric
    candidate = best_candidate(found.experiment_id, metric)
    client = mlflow.MlflowClient()
    version = register_version(client, name, candidate).version
    tag_version(client, name, version, candidate)
    if force:
        promote(client, name, version, alias, stage)
        return Promotion(name, version, metric, candidate.value, version, True, f"version {version} forced to {alias}")
    previous = champion_version(client, name, alias)
    for _ in range(RECONCILE_ROUNDS):  # converge with concurrent register calls
        best = best_version(client, name, metric)
        target = best[0] if best else version
        if champion_version(client, name, alias) == target:
            break
        promote(client, name, target, alias, stage)
    champion = champion_version(client, name, alias)
    if champion == version:
        message = f"version {version} ({metric} {candidate.value:.3f}) is {alias}" + (
            f", replacing version {previous}" if previous and previous != version else "")
    else:
        message = (f"version {version} ({metric} {candidate.value:.3f}) does not beat {alias} version {champion}; "
                   f"{alias} unchanged (use --force to promote it anyway)")
    return Promotion(name, version, metric, candidate.value, champion, champion == version, message)
