"""Dask clusters for batch work: ``local:N`` or a scheduler address, and resources built once per worker.

``--dask local:N`` starts a ``distributed.LocalCluster`` of N worker processes of one thread each
(one torch thread each: the nanny sets ``OMP_NUM_THREADS=1``) for the duration of the ``with``
block; ``tcp://HOST:PORT`` (or ``tls://``, ``ws://``...) connects to a running scheduler, e.g. one
started by dask-jobqueue on SLURM/PBS or by the Dask Kubernetes operator. Workers of a remote
cluster must reach the same files (input scenes, output folder) and the MLflow tracking server.

A :class:`WorkerResource` is a worker plugin that builds something expensive (a model) on its
worker the first time a task asks for it (:func:`worker_resource`) and keeps it for every later
task on that worker; a failure to build it is the failure of that task, reported like any other.
This module imports ``distributed``: import it only where ``--dask`` is given.
"""

from __future__ import annotations

import re
import resource
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from distributed import Client, LocalCluster, get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from seaice_mlflow.core.errors import ParameterError

LOCAL = re.compile(r"^local:(?P<workers>\d+)$")
REMOTE = re.compile(r"^(?:tcp|tls|ws|wss|inproc|ucx)://\S+$")


@dataclass(frozen=True)
class ClusterSpec:
    """Where tasks run: ``workers`` local processes, or the scheduler at ``address``."""

    workers: int = 0
    address: str = ""

    @property
    def local(self) -> bool:
        return not self.address


def parse_cluster(value: str, parameter: str = "dask") -> ClusterSpec:
    """``local:N`` or a scheduler address; a :class:`ParameterError` naming ``parameter`` otherwise."""
    value = value.strip()
    if match := LOCAL.match(value):
        workers = int(match["workers"])
        if workers < 1:
            raise ParameterError(parameter, "local:N needs at least one worker (N >= 1)")
        return ClusterSpec(workers=workers)
    if REMOTE.match(value):
        return ClusterSpec(address=value)
    raise ParameterError(
        parameter,
        f"{value!r} is neither local:N (N worker processes on this machine) nor a scheduler address such as "
        "tcp://HOST:8786",
    )


@contextmanager
def dask_client(spec: ClusterSpec) -> Iterator[Client]:
    """A ``distributed.Client`` of the cluster ``spec`` names (a local one closed after the block)."""
    if spec.local:
        with LocalCluster(
            n_workers=spec.workers, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as cluster, Client(cluster) as client:  # fmt: skip
            yield client
        return
    try:
        client = Client(spec.address, timeout="30s")
    except (OSError, TimeoutError) as err:
        raise ParameterError("dask", f"cannot reach the Dask scheduler at {spec.address}: {err}") from None
    with client:
        yield client


def cluster_size(client: Client) -> int:
    """Workers the scheduler has now."""
    return len(client.scheduler_info(n_workers=-1)["workers"])


def dashboard(client: Client) -> str:
    """The dashboard link, or a note that the scheduler serves none."""
    return client.dashboard_link or "no dashboard (install bokeh on the scheduler)"


def peak_rss_gib() -> float:
    """Peak resident memory of the calling process, in GiB (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def worker_peak_rss(client: Client) -> dict[str, float]:
    """Peak resident memory of each worker process, in GiB."""
    return client.run(peak_rss_gib)


class WorkerResource(WorkerPlugin):
    """A worker plugin that builds ``factory()`` once on each worker, when a task first asks (``name``
    identifies it: :func:`worker_resource`). ``factory`` must pickle (a top-level function or a
    ``functools.partial`` of one)."""

    def __init__(self, name: str, factory: Callable[[], object]):
        self.name, self.factory = name, factory
        self._lock: threading.Lock | None = None
        self._value: object = None
        self._built = False

    def setup(self, worker) -> None:
        self._lock = threading.Lock()

    def get(self) -> object:
        with self._lock:
            if not self._built:
                self._value = self.factory()
                self._built = True
        return self._value

    def __getstate__(self) -> dict:
        return {"name": self.name, "factory": self.factory}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["name"], state["factory"])


def register_resource(client: Client, name: str, factory: Callable[[], object]) -> None:
    """Install a :class:`WorkerResource` on every worker of ``client`` (and on those that join later)."""
    client.register_plugin(WorkerResource(name, factory), name=name)


def worker_resource(name: str) -> object:
    """The resource ``name`` of the worker running this task, built on first use."""
    return get_worker().plugins[name].get()
