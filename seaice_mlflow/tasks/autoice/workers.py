"""Worker processes for per-scene jobs (preprocessing scenes, making synthetic ones).

Workers end with the process that made the pool, however it ends: a ``preprocess`` killed with
SIGKILL would otherwise leave its workers waiting on the job queue forever, re-parented to PID 1.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

#: ``PR_SET_PDEATHSIG`` of <linux/prctl.h>: a signal the kernel sends when the parent ends.
PR_SET_PDEATHSIG = 1

#: Seconds between two looks at the parent where the kernel cannot watch it.
PARENT_POLL_SECONDS = 0.5


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes, forked where the platform can: forked workers start in
    milliseconds instead of re-importing numpy, xarray and netCDF4. Each worker ends when this
    process does (:func:`end_with_parent`)."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context(method),
        initializer=end_with_parent,
        initargs=(os.getpid(),),
    )


def end_with_parent(parent: int) -> None:
    """Pool initializer: make this worker end when process ``parent`` ends.

    On Linux the kernel sends SIGKILL (``prctl(PR_SET_PDEATHSIG)``; it fires when the *thread*
    that started the worker ends, which for a pool is the thread that submitted its first job and
    waits for the results). Elsewhere a daemon thread polls the parent's id. A parent that died
    before either was armed is caught by the check that follows.
    """
    if not set_parent_death_signal(signal.SIGKILL):
        threading.Thread(target=watch_parent, args=(parent,), name="watch-parent", daemon=True).start()
    if os.getppid() != parent:
        os._exit(1)


def set_parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent ends; False where the call
    is not available (not Linux, no C library)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    return prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def watch_parent(parent: int, interval: float = PARENT_POLL_SECONDS) -> None:
    """End this process (without clean-up, as SIGKILL would) once ``parent`` is no longer its parent."""
    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(1)
