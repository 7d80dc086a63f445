"""``python -m seaice_mlflow`` runs the ``seaice`` command line."""

from seaice_mlflow.cli import main

main()
