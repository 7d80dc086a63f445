"""Where models logged before the task seam (recipe version 1) find their class.

Their ``pyfunc_entry.py`` runs ``from seaice_mlflow.tracking.pyfunc import SeaIceChartModel``;
the class now lives in :mod:`seaice_mlflow.tasks.autoice.pyfunc`. Imported lazily, so that the
tracking layer does not depend on a task (``tests/test_legacy_model.py`` loads such a model).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "SeaIceChartModel":
        from seaice_mlflow.tasks.autoice.pyfunc import SeaIceChartModel

        return SeaIceChartModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
