"""Models-from-code entry of the logged optical pyfunc (MLflow runs this file when loading the model)."""

from mlflow.models import set_model

from seaice_mlflow.tasks.optical.pyfunc import PhotoMaskModel

set_model(PhotoMaskModel())
