"""One step per command, each opening its MLflow run with :func:`seaice_mlflow.tracking.runs.step_run`."""
