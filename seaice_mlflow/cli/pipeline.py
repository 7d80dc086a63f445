"""``seaice pipeline`` (MLproject entry point ``main``): the whole chain as MLflow child runs."""

from __future__ import annotations

import click

from seaice_mlflow.cli.options import options_from
from seaice_mlflow.config import PipelineDefaults


@click.command("pipeline")
@options_from(PipelineDefaults)
def pipeline_command(profile: str, data_dir: str, test_dir: str, model_name: str, out: str, seed: int) -> None:
    """preprocess -> train -> evaluate -> register -> predict, as child runs of one MLflow run."""
    import mlflow

    from seaice_mlflow.pipeline import run_pipeline
    from seaice_mlflow.tracking.runs import MODEL_URI_TAG, log_params_once, start_run

    with start_run("main", "main") as run:
        log_params_once({"profile": profile, "data_dir": data_dir, "test_dir": test_dir, "model_name": model_name,
                         "out": out, "seed": seed})
        result = run_pipeline(profile, data_dir, test_dir, model_name, out, seed, run.info.experiment_id,
                              run.info.run_id)
        mlflow.log_metrics({**result.scores, **result.baseline})
        mlflow.set_tags({MODEL_URI_TAG: result.model_uri, "seaice.champion_uri": result.champion_uri,
                         **{f"seaice.run.{step}": run_id for step, run_id in result.runs.items()}})
    scores = result.scores
    click.echo(f"test combined {scores.get('test_combined', float('nan')):.3f} (per-pixel baseline "
               f"{result.baseline['baseline_test_combined']:.3f}); champion {result.champion_uri}")
    click.echo(f"charts: {result.charts}")
    click.echo("open the MLflow UI: mlflow ui --backend-store-uri " + mlflow.get_tracking_uri())
