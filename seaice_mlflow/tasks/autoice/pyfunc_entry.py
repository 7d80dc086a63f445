"""Models-from-code entry of the logged pyfunc (MLflow runs this file when loading the model)."""

from mlflow.models import set_model

from seaice_mlflow.tasks.autoice.pyfunc import SeaIceChartModel

set_model(SeaIceChartModel())
