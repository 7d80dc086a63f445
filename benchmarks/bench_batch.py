"""Batch charting: ``seaice predict`` in one process against ``--dask local:N``, in one run.

Eight synthetic 2000 x 2000 test scenes (cached in .bench/) are charted by the default U-Net (all
24 inputs; random weights, which cost the same as trained ones), logged once to a sqlite store in a
temporary folder. Each case is a ``seaice predict`` command of its own, into an empty folder, with
``--overwrite``: in one process (torch's threads: one per core), in one process of one thread
(what each worker runs: the nanny sets ``OMP_NUM_THREADS=1``), then with ``--dask local:N``
(``--workers``, default 2).
Printed per case: wall seconds of the command (interpreter start, model loading, cluster start and
every scene), scenes per minute by that wall time and by the run's summed per-scene seconds
(``scene_seconds``), and peak RSS: of the process for the single one (``wait4``), of the largest
worker for the cluster (the run's ``dask_worker_peak_rss_gib``). Then the ratio of scenes per
minute, cluster against one process (the project's target on the 2-core machine: >= 1.6x) and
against one process of one thread, and whether every case wrote the same charts.

    python benchmarks/bench_batch.py [--scenes 8] [--size 2000 2000] [--workers 2] [--seed 5]
        [--format netcdf] [--tile 768]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import synthetic_split

EXPERIMENT = "bench-batch"


def log_default_model(uri: str, artifacts: Path) -> str:
    """The default U-Net with random weights, logged to ``uri`` (artifacts in the folder ``artifacts``);
    its models:/ URI."""
    import mlflow
    import torch

    from seaice_mlflow.models import ModelSpec, UNetOptions, build_model
    from seaice_mlflow.tasks.autoice.charts import AUTOICE
    from seaice_mlflow.tasks.autoice.config import TRAIN
    from seaice_mlflow.tasks.autoice.files.variables import parse_variables
    from seaice_mlflow.tasks.autoice.pyfunc import log_chart_model
    from seaice_mlflow.tasks.autoice.recipe import Recipe

    variables = parse_variables(TRAIN.variables)
    filters = tuple(int(f) for f in TRAIN.unet_filters.split(","))
    recipe = Recipe(ModelSpec("unet", len(variables), AUTOICE.outputs(), UNetOptions(filters)), variables)
    torch.manual_seed(0)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    if client.get_experiment_by_name(EXPERIMENT) is None:  # artifacts beside the store, not in ./mlruns
        client.create_experiment(EXPERIMENT, artifact_location=(artifacts / "artifacts").resolve().as_uri())
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name="bench-batch-model"):
        return log_chart_model(build_model(recipe.model), recipe).model_uri


def predict_case(model_uri: str, scenes: Path, out: Path, args: argparse.Namespace, dask: str, threads: int) -> dict:
    """One ``seaice predict`` command (``threads``: its torch threads, 0: torch's default); its wall
    seconds, peak RSS and run id."""
    command = [sys.executable, "-m", "seaice_mlflow", "predict", "--model-uri", model_uri, "--scenes", str(scenes),
               "--out", str(out), "--format", args.format, "--tile", str(args.tile), "--device", "cpu",
               "--overwrite"] + (["--dask", dask] if dask else [])  # fmt: skip
    log = out.parent / f"{out.name}.log"
    clock = time.perf_counter()
    with open(log, "w") as stream:
        env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
        proc = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own peak RSS
    seconds = time.perf_counter() - clock
    stdout = log.read_text()
    if (code := os.waitstatus_to_exitcode(status)) != 0:
        raise SystemExit(f"seaice predict {'--dask ' + dask if dask else ''} failed ({code}):\n{stdout[-2000:]}")
    run_id = next(line.split()[1].rstrip(":") for line in stdout.splitlines() if line.startswith("run "))
    return {"seconds": seconds, "run_id": run_id, "usage": usage}


def chart_bytes(out: Path) -> dict[str, bytes]:
    import xarray as xr

    from seaice_mlflow.tasks.autoice.charts import CHART_NAMES

    charts = {}
    for path in sorted(out.glob("*_charts.nc")):
        with xr.open_dataset(path, mask_and_scale=False) as ds:
            charts[path.name] = b"".join(ds[c].values.tobytes() for c in CHART_NAMES)
    return charts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=[2000, 2000], metavar=("H", "W"))
    parser.add_argument("--workers", type=int, default=2, help="workers of the LocalCluster")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--format", default="netcdf", help="--format of both cases")
    parser.add_argument("--tile", type=int, default=768)
    args = parser.parse_args()

    import mlflow

    clock = time.perf_counter()
    scenes = synthetic_split("batch", args.scenes, tuple(args.size), "test", args.seed)
    print(f"{args.scenes} synthetic test scenes of {args.size[0]}x{args.size[1]} in {scenes} "
          f"({time.perf_counter() - clock:.0f} s)", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        work = Path(tmp)
        uri = f"sqlite:///{(work / 'mlflow.db').resolve()}"
        os.environ.update(MLFLOW_TRACKING_URI=uri, MLFLOW_EXPERIMENT_NAME=EXPERIMENT)
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        model_uri = log_default_model(uri, work)
        cases = {}
        cluster = f"local:{args.workers}"
        for label, dask, threads in (("one process", "", 0), ("1 thread", "", 1), (cluster, cluster, 0)):
            out = work / label.replace(" ", "-").replace(":", "")
            case = predict_case(model_uri, scenes, out, args, dask, threads)
            run = mlflow.get_run(case["run_id"])
            steps = mlflow.MlflowClient().get_metric_history(case["run_id"], "scene_seconds")
            charted = int(run.data.metrics["predict_scenes"])
            case.update(
                charted=charted,
                scene_seconds=sum(m.value for m in steps),
                rss=run.data.metrics["dask_worker_peak_rss_gib"] if dask else case["usage"].ru_maxrss / 2**20,
                charts=chart_bytes(out),
            )
            cases[label] = case
            print(f"  {label:<12} {case['seconds']:6.1f} s wall, {charted} scenes", flush=True)

    print(f"\nbatch charting: {args.scenes} scenes of {args.size[0]}x{args.size[1]}, default U-Net, CPU, "
          f"{os.cpu_count()} cores")  # fmt: skip
    print(f"{'case':<12} {'wall s':>7} {'scenes/min':>11} {'per-scene s':>12} {'scenes/min (charting)':>22} "
          f"{'peak RSS GiB':>13}")  # fmt: skip
    for label, c in cases.items():
        per_scene = c["scene_seconds"] / c["charted"]
        workers = args.workers if label == cluster else 1
        print(f"{label:<12} {c['seconds']:7.1f} {60 * c['charted'] / c['seconds']:11.2f} {per_scene:12.1f} "
              f"{60 * workers / per_scene:22.2f} {c['rss']:13.2f}")  # fmt: skip
    one, single, many = cases.values()

    def ratio(a: dict, b: dict) -> float:
        return (a["charted"] / a["seconds"]) / (b["charted"] / b["seconds"])

    print(f"ratio of scenes/min (wall), {cluster} / one process: {ratio(many, one):.2f}x (target >= 1.6x); "
          f"{cluster} / one process of one thread (a worker's own): {ratio(many, single):.2f}x")  # fmt: skip
    print("peak RSS: the process for one process, the largest worker for the cluster")
    same = one["charts"] == many["charts"] == single["charts"]
    print(f"same charts in every case: {same} ({len(one['charts'])} products)")


if __name__ == "__main__":
    main()
