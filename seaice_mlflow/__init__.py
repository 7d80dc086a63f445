"""seaice-mlflow: automated sea-ice charting from Sentinel-1 scenes, packaged for MLflow."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("seaice-mlflow")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
