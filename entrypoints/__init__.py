"""Thin scripts that the MLproject entry points call (``python -m entrypoints.<name> ...``).

Each runs the ``seaice`` command of the same name, so `mlflow run . -e NAME -P key=value` and
`seaice NAME --key value` behave alike; the MLproject passes every parameter explicitly.
"""

import sys


def run(*command: str) -> None:
    """Run ``seaice <command...>`` (``run("optical", "train")``: a group's command) with this process's arguments."""
    from seaice_mlflow.cli import main

    main([*command, *sys.argv[1:]])
