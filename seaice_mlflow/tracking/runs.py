"""MLflow runs: an explicit absolute tracking URI, attaching to `mlflow run`, params logged once.

A command checks the tracking server before any work (an HTTP server that does not answer
fails in seconds, naming the URI), makes a relative sqlite URI absolute, and ends its run
KILLED when it is interrupted (SIGTERM, Ctrl-C).

A SIGKILL (or a lost node) leaves no chance to end a run: it stays RUNNING. Every run is tagged with
the process that runs it (:data:`OWNER_TAG`), and a command that takes such work over (a resumed
training, the next ``tune`` of a study, a ``study`` or ``optical train`` run again into the same
folder) ends the RUNNING runs it takes over, and the runs under them, KILLED (:func:`take_over`,
:func:`end_abandoned`) when their process has ended: it is looked for on this host, in this PID
namespace, with the same start time (a reused PID is not taken for it). A run of another machine, or
one without the tag (made by an older version), cannot be seen from here: where the work is one
process's at a time (an output folder, a resumed checkpoint) it counts as ended, where processes may
share it (several tunes of one study) it is left RUNNING.

Runs are named by step and what it acts on (:func:`run_name`: ``train unet store-x4``, ``evaluate
m-1a2b3c4d on 24 scenes``), also the runs `mlflow run` creates (MLflow names them at random,
``amusing-gnu-51``, which left train, evaluate and predict indistinguishable in the UI's list). A run
goes to the experiment the user chose (``--experiment``, ``MLFLOW_EXPERIMENT_NAME`` or ``_ID``), else
to its task family's (:data:`~seaice_mlflow.core.defaults.DEFAULT_EXPERIMENTS`: ``seaice`` for the SAR
charts, ``seaice-optical`` for photos). `mlflow run` without ``--experiment-name`` puts its run in
MLflow's Default experiment before the step starts; the step cannot move it and says so.

Every command has one step function (``tracking.preprocessing.preprocess``, ``tracking.training.train``,
``tracking.evaluation.evaluate``, ``tracking.registration.register``, ``tracking.prediction.predict``,
``pipeline.main``) that opens its run with :func:`step_run`; the click command parses options,
calls it and prints.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import mlflow
import pandas as pd
import psutil
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from seaice_mlflow.core.defaults import DEFAULT_EXPERIMENTS, TRACKING, TaskFamily
from seaice_mlflow.core.errors import Interrupted, SeaIceError, first_line

#: The experiment of the AutoICE commands when none is chosen (each family's: ``DEFAULT_EXPERIMENTS``).
DEFAULT_EXPERIMENT = DEFAULT_EXPERIMENTS["autoice"]
#: Longest run name made here: what the MLflow UI's run column shows.
RUN_NAME_LENGTH = 80
#: MLflow's experiment for runs nobody put elsewhere (``mlflow run`` without ``--experiment-name``).
MLFLOW_DEFAULT_EXPERIMENT_ID = "0"
#: Tags naming the model a run trained or scored (``models:/m-...``; comma-separated for an
#: ensemble) and its logged model id(s); ``seaice register`` reads them.
MODEL_URI_TAG, MODEL_ID_TAG = "seaice.model_uri", "seaice.model_id"
#: Tag of an evaluate run that scored a model on scenes it was trained or validated on ("true"/"false"):
#: the registry does not rank models by such scores.
SCORED_ON_TRAINING_TAG = "seaice.scored_on_training_scenes"
#: Artifact key of a logged model's state dict (the registry checks its weights are finite).
WEIGHTS_ARTIFACT = "weights"
#: Tag of every run: the process running it (JSON: host, PID namespace, PID, start time), so that a
#: command taking its work over can tell a run whose process has ended from one still running.
OWNER_TAG = "seaice.owner"
#: Tag of a run left RUNNING by a process that ended, marked KILLED: the run that took its work over.
TAKEN_OVER_TAG = "seaice.taken_over_by"
#: What can be told of a run's process from here.
OwnerState = Literal["running", "ended", "unseen"]
SQLITE = "sqlite:///"
#: MLflow's HTTP settings, by environment variable (read by MLflow at every request).
HTTP_SETTINGS = {
    "retries": "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "timeout": "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "backoff": "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
}


class TrackingUnavailable(SeaIceError):
    """The tracking server does not answer (or refuses); the message names the URI."""


def public_uri(uri: str) -> str:
    """A tracking URI without user name or password (they must not end up in messages or files)."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        return urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))
    return uri


def is_http(uri: str) -> bool:
    return urlsplit(uri).scheme in ("http", "https")


@contextmanager
def http_patience(retries: int, timeout: int, backoff: int = 1) -> Iterator[None]:
    """MLflow's HTTP retries, timeout (s) and backoff factor for the calls inside; the previous
    settings (the user's or MLflow's defaults) come back afterwards."""
    saved = {name: os.environ.get(name) for name in HTTP_SETTINGS.values()}
    os.environ.update(
        {
            HTTP_SETTINGS["retries"]: str(retries),
            HTTP_SETTINGS["timeout"]: str(timeout),
            HTTP_SETTINGS["backoff"]: str(backoff),
        }
    )
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def connection_problem(err: BaseException) -> str:
    """The short reason inside MLflow's long message for a failed request ("Connection refused")."""
    text = str(err)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    return errno.group(1).strip() if errno else first_line(err, 160)


def check_tracking_server(uri: str) -> None:
    """An HTTP tracking server must answer within seconds; other stores are local."""
    if not is_http(uri):
        return
    try:
        with http_patience(retries=0, timeout=TRACKING.check_timeout_s):
            mlflow.MlflowClient(uri).search_experiments(max_results=1)
    except MlflowException as err:
        raise TrackingUnavailable(
            f"MLFLOW_TRACKING_URI {public_uri(uri)}: the tracking server does not answer "
            f"({connection_problem(err)}); start it, or set MLFLOW_TRACKING_URI to a running "
            "server or an absolute sqlite:////path/mlflow.db"
        ) from None


def absolute_sqlite(uri: str) -> str:
    """A ``sqlite:///relative.db`` URI made absolute against the working directory, with a note.

    Under `mlflow run` (``MLFLOW_RUN_ID`` set) a step runs in the project folder, so a relative
    database there is another one than where `mlflow run` created the run: refused when the
    run is not in it.
    """
    if not uri.startswith(SQLITE) or uri.startswith(SQLITE + "/") or uri in (SQLITE, "sqlite://"):
        return uri
    absolute = f"{SQLITE}{Path.cwd().resolve() / uri.removeprefix(SQLITE)}"
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if run_id and not run_exists(absolute, run_id):
        raise TrackingUnavailable(
            f"MLFLOW_TRACKING_URI {uri} is relative, and run {run_id} of `mlflow run` is not in "
            f"{absolute} (this step runs in {Path.cwd()}); set MLFLOW_TRACKING_URI absolute, "
            "e.g. sqlite:////abs/path/mlflow.db, and run again"
        )
    print(
        f"note: MLFLOW_TRACKING_URI {uri} is relative; using {absolute} (set it absolute to silence this)",
        file=sys.stderr,
    )
    return absolute


def run_exists(uri: str, run_id: str) -> bool:
    try:
        mlflow.MlflowClient(uri).get_run(run_id)
    except MlflowException:
        return False
    return True


def resolve_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else an absolute sqlite database in the working directory.

    The URI is exported so that child processes (``mlflow run`` steps, loader workers) use the
    same store; MLflow's own default would silently switch to a file store if ``./mlruns``
    exists (spec mlflow.md section 1).
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"{SQLITE}{Path.cwd().resolve() / 'mlflow.db'}"
    uri = absolute_sqlite(uri)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    check_tracking_server(uri)
    mlflow.set_tracking_uri(uri)
    return uri


@contextmanager
def start_run(
    run_name: str,
    entry_point: str,
    experiment: str | None = None,
    system_metrics: bool = False,
    family: TaskFamily = "autoice",
) -> Iterator[mlflow.ActiveRun]:
    """The run of a command, named ``run_name``: the one `mlflow run` created (``MLFLOW_RUN_ID``; its
    random name is replaced), else a new run in ``experiment`` (or ``MLFLOW_EXPERIMENT_NAME``, or
    ``MLFLOW_EXPERIMENT_ID``, or the task ``family``'s default experiment, :data:`DEFAULT_EXPERIMENTS`).

    A step started inside another step's run (a tune's trials) is that run's child, in its experiment.
    `mlflow run` without ``--experiment-name`` puts its run in MLflow's Default experiment, which a
    step cannot change: it says so, naming the family's experiment.

    The run ends KILLED when the command is interrupted, FAILED on an error (a server that went
    away is not waited for again), FINISHED otherwise."""
    resolve_tracking_uri()
    nested = mlflow.active_run() is not None
    attached = not nested and "MLFLOW_RUN_ID" in os.environ
    if not nested and not attached:
        name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
        if name or not _experiment_exists(os.environ.get("MLFLOW_EXPERIMENT_ID")):
            mlflow.set_experiment(name or DEFAULT_EXPERIMENTS[family])
    with mlflow.start_run(run_name=run_name, nested=nested, log_system_metrics=system_metrics) as run:
        mlflow.set_tags({"seaice.entry_point": entry_point, OWNER_TAG: process_owner()})
        if attached and run.info.experiment_id == MLFLOW_DEFAULT_EXPERIMENT_ID:
            stderr_line(f"note: run {run.info.run_id} is in MLflow's Default experiment (`mlflow run` without "
                        f"--experiment-name); {family} runs belong in {DEFAULT_EXPERIMENTS[family]}")  # fmt: skip
        try:
            yield run
        except (Interrupted, KeyboardInterrupt) as err:
            end_run_quickly("KILLED")
            if isinstance(err, Interrupted) and not err.described:  # the innermost run names itself
                raise err.ended(entry_point, run.info.run_id) from None
            raise
        except TrackingUnavailable:
            end_run_quickly("FAILED")
            raise


@contextmanager
def step_run(
    entry_point: str,
    params: Mapping[str, object],
    experiment: str | None = None,
    system_metrics: bool = False,
    *,
    name: str | None = None,
    family: TaskFamily = "autoice",
) -> Iterator[mlflow.ActiveRun]:
    """The run of one step (command), as every step opens it: :func:`start_run` tagged with its entry
    point and named ``name`` (:func:`run_name`: the step and what it acts on; default: the entry
    point), with the step's params logged once (:func:`log_params_once`)."""
    with start_run(name or entry_point, entry_point, experiment, system_metrics, family) as run:
        log_params_once(params)
        yield run


def run_name(step: str, *subjects: object) -> str:
    """A run's name in the MLflow UI: the step and what it acts on (``train unet store-x4``, ``evaluate
    seaice-charts@champion on 24 scenes``); empty subjects are left out, and the name is cut to
    :data:`RUN_NAME_LENGTH` characters."""
    name = " ".join(str(s) for s in (step.replace("_", " "), *subjects) if s not in ("", None))
    return name if len(name) <= RUN_NAME_LENGTH else name[: RUN_NAME_LENGTH - 3] + "..."


def model_label(uris: Sequence[str]) -> str:
    """Model URI(s) as a run name shows them: ``m-1a2b3c4d`` (a logged model), ``seaice-charts@champion``
    or ``seaice-charts/3`` (registry), ``run 1a2b3c4d`` (``runs:/``), a folder's name; ``N models`` for an
    ensemble."""
    if len(uris) != 1:
        return f"{len(uris)} models"
    uri = uris[0].rstrip("/")
    if uri.startswith("models:/m-"):
        return uri.removeprefix("models:/")[:10]
    if uri.startswith("models:/"):
        return uri.removeprefix("models:/")
    if uri.startswith("runs:/"):
        return f"run {uri.removeprefix('runs:/')[:8]}"
    return Path(uri).name or uri


def plural(number: int, noun: str) -> str:
    """``1 scene``, ``24 scenes``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def end_run_quickly(status: str) -> None:
    """End the active run with ``status``, trying the server once (MLflow forgets the run either way)."""
    try:
        with http_patience(retries=0, timeout=TRACKING.check_timeout_s):
            mlflow.end_run(status)
    except MlflowException:
        pass


def pid_namespace() -> str:
    """This process's PID namespace (Linux; "" elsewhere): PIDs of two containers on one host differ in it."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def process_owner() -> str:
    """This process as :data:`OWNER_TAG` holds it."""
    me = psutil.Process()
    owner = {"host": socket.gethostname(), "pid_namespace": pid_namespace(), "pid": me.pid,
             "started": round(me.create_time(), 2)}  # fmt: skip
    return json.dumps(owner)


def owner_state(owner: str | None) -> OwnerState:
    """Whether the process an :data:`OWNER_TAG` names still runs, has ended, or cannot be seen from here
    (another host or PID namespace, no tag)."""
    try:
        found = json.loads(owner or "")
        here = (found["host"], found["pid_namespace"]) == (socket.gethostname(), pid_namespace())
        pid, started = int(found["pid"]), float(found["started"])
    except (ValueError, KeyError, TypeError):
        return "unseen"
    if not here:
        return "unseen"
    try:
        process = psutil.Process(pid)
        same = process.status() != psutil.STATUS_ZOMBIE and abs(process.create_time() - started) < 1
    except psutil.NoSuchProcess:  # a zombie too: killed, not yet reaped
        return "ended"
    except psutil.AccessDenied:  # another user's process: it exists
        return "running"
    return "running" if same else "ended"


def end_abandoned(runs: Iterable[Run], by: str, exclusive: bool = True) -> list[str]:
    """Mark KILLED each RUNNING run of ``runs`` whose process has ended (:func:`owner_state`; with
    ``exclusive``, one that cannot be seen too), and the RUNNING runs under it likewise, each tagged
    :data:`TAKEN_OVER_TAG` ``by`` (the run taking the work over); returns their ids, children first."""
    client = mlflow.MlflowClient()
    ended: list[str] = []
    for run in runs:
        state = owner_state(run.data.tags.get(OWNER_TAG))
        if run.info.status != "RUNNING" or state == "running" or (state == "unseen" and not exclusive):
            continue
        under = f"tags.mlflow.parentRunId = '{run.info.run_id}' and attributes.status = 'RUNNING'"
        ended += end_abandoned(client.search_runs([run.info.experiment_id], under), by, exclusive)
        client.set_tag(run.info.run_id, TAKEN_OVER_TAG, by)
        client.set_terminated(run.info.run_id, "KILLED")
        ended.append(run.info.run_id)
    return ended


def stderr_line(text: str) -> None:
    """One line on stderr, at once (the default ``echo`` of the steps' notes and warnings)."""
    print(text, file=sys.stderr, flush=True)


def take_over(
    entry_point: str, same: Mapping[str, object], echo: Callable[[str], None] = stderr_line, exclusive: bool = True
) -> list[str]:
    """End the runs whose work the active run takes over: the RUNNING runs of ``entry_point`` in its
    experiment with the params ``same`` (the same study, the same output folder) whose process has
    ended, with the runs under them (:func:`end_abandoned`; ``exclusive``: no other process may share
    the work); ``echo`` hears one line when there are some. Returns their ids."""
    active = mlflow.active_run()
    wanted = {name: format_param(value) for name, value in same.items()}
    candidates = [
        run
        for run in mlflow.MlflowClient().search_runs(
            [active.info.experiment_id],
            f"attributes.status = 'RUNNING' and tags.`seaice.entry_point` = '{entry_point}'",
        )
        if run.info.run_id != active.info.run_id and all(run.data.params.get(k) == v for k, v in wanted.items())
    ]
    ended = end_abandoned(candidates, active.info.run_id, exclusive)
    if ended:
        echo(f"note: {len(ended)} run(s) a stopped {entry_point} left RUNNING are marked KILLED, taken over by "
             f"run {active.info.run_id}: {', '.join(ended)}")  # fmt: skip
    return ended


def _experiment_exists(experiment_id: str | None) -> bool:
    if not experiment_id:
        return False
    try:
        return mlflow.MlflowClient().get_experiment(experiment_id).lifecycle_stage == "active"
    except mlflow.exceptions.MlflowException:
        return False


def format_param(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def log_params_once(params: Mapping[str, object]) -> None:
    """Log the params the active run does not have yet.

    `mlflow run` logs the entry point's declared parameters itself, as the strings the user gave
    (``lr='1e-4'``); logging them again with another spelling would fail, so those keys are left.
    """
    run = mlflow.active_run()
    existing = mlflow.get_run(run.info.run_id).data.params if run else {}
    new = {k: format_param(v) for k, v in params.items() if k not in existing}
    if new:
        mlflow.log_params(new)


def log_scene_dataset(scenes: list[dict], source: str, name: str, context: str) -> None:
    """The scenes a run used, as an MLflow dataset input (shown in the UI's Datasets column)."""
    columns = ["scene_id", "kind", "split", "file", "sha256", "lines", "samples"]
    rows = [
        {
            "scene_id": s["scene_id"],
            "kind": s["kind"],
            "split": s.get("split", ""),
            "file": s.get("source", {}).get("file", ""),
            "sha256": s.get("source", {}).get("sha256", ""),
            "lines": s["full_shape"][0],
            "samples": s["full_shape"][1],
        }
        for s in scenes
    ]
    with warnings.catch_warnings():  # MLflow's advice on integer columns and path sources does not apply
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(pd.DataFrame(rows, columns=columns), source=source, name=name)
        mlflow.log_input(dataset, context=context)
