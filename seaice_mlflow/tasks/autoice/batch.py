"""Batch charting on a Dask cluster: each scene file is a task, each worker loads the model(s) once.

:func:`predict_on_cluster` is :func:`~seaice_mlflow.tasks.autoice.prediction.predict_files` with the
scenes spread over a ``distributed`` cluster (:mod:`seaice_mlflow.core.cluster`). A worker loads the
model(s) by their pinned URIs (so every worker charts with the same version, even if the champion
moves meanwhile) on its first scene, then charts each scene as the single-process loop does (read
tile by tile, every product written atomically by the same sinks): the charts are identical. A
scene that fails, or a worker that dies on it, is reported and the others go on; scenes whose
products exist are skipped before any task starts (the client checks, as the loop does). Scenes
of one id given twice are charted once, the later files reported. The upload package (one file of
all scenes) is not written from a cluster.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

import mlflow
from distributed import Client, as_completed

from seaice_mlflow.core.cluster import register_resource, worker_resource
from seaice_mlflow.core.engine import TileOptions
from seaice_mlflow.core.errors import SceneError, SeaIceError
from seaice_mlflow.core.progress import progress_bar
from seaice_mlflow.tasks.autoice import charting
from seaice_mlflow.tasks.autoice.logged_models import load_charter
from seaice_mlflow.tasks.autoice.prediction import PREDICT, ChartJob, PredictionResult, scene_sinks

#: The worker resource holding the charter.
CHARTER = "seaice-charter"


def load_worker_charter(tracking_uri: str, registry_uri: str, uris: Sequence[str], device: str, options: TileOptions):
    """The charter of a worker: the model(s) loaded from the client's tracking and registry stores."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)
    return load_charter(uris, device, options)[0]


def chart_scene_task(path: Path, job: ChartJob) -> charting.SceneOutcome:
    """One scene on a worker, through the same sinks as :func:`~.prediction.predict_files`."""
    charter = worker_resource(CHARTER)
    sinks = scene_sinks(job, charter)
    with ExitStack() as stack:
        for sink in sinks:
            stack.enter_context(sink)
        return charting.chart_file(path, charter, sinks, PREDICT, job.probabilities, set(), job.uncertainty)


def repeated_scenes(files: Sequence[Path]) -> dict[Path, charting.SceneOutcome]:
    """Failed outcomes of the files whose scene id an earlier file has (the first one is charted)."""
    first: dict[str, Path] = {}
    repeated = {}
    for path in files:
        key = charting.scene_key(path)
        if key and key in first:
            error = SceneError(path, f"scene {key} is also in {first[key].name}", PREDICT.repeat_remedy)
            repeated[path] = charting.SceneOutcome(path, "failed", str(error), key)
        first.setdefault(key, path)
    return repeated


def predict_on_cluster(
    client: Client,
    files: Sequence[Path],
    job: ChartJob,
    model_uris: Sequence[str],
    device: str,
    options: TileOptions,
    skip: Callable[[Path], str] | None = None,
    on_scene: Callable[[charting.SceneOutcome], None] | None = None,
) -> PredictionResult:
    """Chart ``files`` as tasks on ``client``'s cluster with the model(s) ``model_uris`` (pinned URIs);
    the outcomes in file order, each given to ``on_scene`` as it completes (a bar over the scenes on a
    terminal). A :class:`SeaIceError` when no scene could be charted and none was skipped."""
    factory = functools.partial(
        load_worker_charter, mlflow.get_tracking_uri(), mlflow.get_registry_uri(), list(model_uris), device, options
    )
    register_resource(client, CHARTER, factory)
    outcomes: dict[Path, charting.SceneOutcome] = repeated_scenes(files)
    for path in files:
        if path not in outcomes and (skipped := charting.skipped_file(path, skip)) is not None:
            outcomes[path] = skipped
    for outcome in outcomes.values():
        if on_scene is not None:
            on_scene(outcome)
    todo = [path for path in files if path not in outcomes]
    started = {path: time.perf_counter() for path in todo}
    futures = {client.submit(chart_scene_task, path, job, key=f"chart-{i}-{path.name}", pure=False): path
               for i, path in enumerate(todo)}  # fmt: skip
    with progress_bar(total=len(todo), desc="scenes", unit="scene") as bar:
        for future in as_completed(futures):
            path = futures[future]
            try:
                outcome = future.result()
            except Exception as err:  # noqa: BLE001 - a worker that died, or an error outside charting
                seconds = time.perf_counter() - started[path]
                outcome = charting.SceneOutcome(path, "failed", f"{path.name}: {type(err).__name__}: {err}",
                                                charting.scene_key(path), seconds)  # fmt: skip
            outcomes[path] = outcome
            bar.update()
            if on_scene is not None:
                on_scene(outcome)
    ordered = [outcomes[path] for path in files]
    if not any(o.status in ("written", "skipped") for o in ordered):
        raise SeaIceError(PREDICT.nothing_done(files, ordered))
    return PredictionResult(ordered)
