"""Child processes that run with this interpreter, not whichever ``python`` is first on PATH.

MLflow starts some programs by name: the local env manager runs an MLproject command
(``python -m entrypoints...``) and ``mlflow models serve`` runs ``uvicorn``, each looked up on
PATH. ``.venv/bin/seaice ...`` without the venv activated would then run the system's
programs, which lack this package's dependencies (``No module named 'tqdm'``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def interpreter_path() -> str:
    """PATH with the folder of this process's interpreter (the venv's ``bin``) first."""
    before = os.environ.get("PATH")
    return os.pathsep.join([str(Path(sys.executable).parent), *([before] if before else [])])


@contextmanager
def interpreter_first_on_path() -> Iterator[None]:
    """:func:`interpreter_path` as this process's PATH inside, restored afterwards."""
    before = os.environ.get("PATH")
    os.environ["PATH"] = interpreter_path()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = before
