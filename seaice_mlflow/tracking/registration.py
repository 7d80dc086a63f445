"""A register run in MLflow: the experiment's best model becomes the registered champion
(the rules are in :mod:`seaice_mlflow.tracking.registry`), with what was promoted as metrics and tags.

The experiment is looked up before the run starts, so a misspelt name creates no experiment.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import mlflow

from seaice_mlflow.core.defaults import RegisterDefaults
from seaice_mlflow.tracking import registry
from seaice_mlflow.tracking.model_refs import OUTCOME_TAG, REGISTERED_URI_TAG
from seaice_mlflow.tracking.runs import resolve_tracking_uri, run_name, step_run


@dataclass
class RegisterRun:
    run_id: str
    promotion: registry.Promotion


def register(options: RegisterDefaults = RegisterDefaults()) -> RegisterRun:
    """Register the best model of ``options.experiment`` in a run of that experiment ("register")."""
    resolve_tracking_uri()
    registry.find_experiment(options.experiment)  # before the run starts: a typo must not create an experiment
    with step_run(
        "register", asdict(options), experiment=options.experiment, name=run_name("register", options.model_name)
    ) as run:
        # looked up on the module when called: tests hold concurrent calls at a barrier by replacing it
        promotion = registry.register_best(
            options.experiment,
            options.model_name,
            options.metric,
            options.alias,
            options.stage,
            options.force,
            options.task,
        )
        # not under the ranking metric's own name: this run must not look like a candidate
        mlflow.log_metrics(
            {
                "registered_version": int(promotion.version),
                "champion_version": int(promotion.champion),
                "promoted": float(promotion.promoted),
                **({} if promotion.value is None else {"candidate_value": promotion.value}),
            }
        )
        mlflow.set_tags(
            {
                "seaice.registered_model": options.model_name,
                "seaice.champion_uri": f"models:/{options.model_name}@{options.alias}",
                "seaice.ranked_by": promotion.metric,
                REGISTERED_URI_TAG: f"models:/{options.model_name}/{promotion.version}",
                OUTCOME_TAG: promotion.message,
            }
        )
        return RegisterRun(run.info.run_id, promotion)
