"""Models-from-code entry of the logged floe pyfunc (MLflow runs this file when loading the model)."""

from mlflow.models import set_model

from seaice_mlflow.tasks.optical.floes.pyfunc import FloeModel

set_model(FloeModel())
