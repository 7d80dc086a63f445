"""Batch charting: re-runs skip charted scenes, and a Dask LocalCluster writes the single-process charts."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import mlflow
import pytest
import rasterio
import xarray as xr
from click.testing import CliRunner

from seaice_mlflow.cli import cli
from seaice_mlflow.core.cluster import ClusterSpec, parse_cluster
from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES
from seaice_mlflow.tasks.autoice.rerun import SIGNATURE, recorded_signature
from tests.conftest import prep_files
from tests.tiny_model import train_tiny_model

EXPERIMENT = "batch-test"
FAST = ["--device", "cpu", "--tile", "64", "--overlap", "32"]


@pytest.fixture(scope="module")
def model_uri(store_uri, ready_dir, tmp_path_factory) -> str:
    return train_tiny_model(ready_dir, tmp_path_factory.mktemp("batch-train"), store_uri, EXPERIMENT)[0]


def predict(model_uri: str, scenes, out, *args: str):
    return CliRunner().invoke(
        cli,
        [
            "predict",
            "--model-uri",
            model_uri,
            "--scenes",
            ",".join(map(str, scenes)),
            "--out",
            str(out),
            *FAST,
            *args,
        ],  # fmt: skip
    )


def run_of(output: str) -> mlflow.entities.Run:
    run_id = next(line.split()[1].rstrip(":") for line in output.splitlines() if line.startswith("run "))
    return mlflow.get_run(run_id)


def skipped(output: str) -> int:
    return sum(line.startswith("skipped ") for line in output.splitlines())


def chart_values(path) -> dict[str, bytes]:
    with xr.open_dataset(path, mask_and_scale=False) as ds:
        return {chart: ds[chart].values.tobytes() for chart in CHART_NAMES}


def geotiff(path) -> tuple[bytes, list[tuple[float, ...]]]:
    """A GeoTIFF's pixels and tie points."""
    with rasterio.open(path) as tif:
        return tif.read().tobytes(), [(g.row, g.col, g.x, g.y) for g in tif.gcps[0]]


def test_cluster_addresses():
    assert parse_cluster("local:3") == ClusterSpec(workers=3)
    assert parse_cluster("tcp://10.0.0.5:8786") == ClusterSpec(address="tcp://10.0.0.5:8786")
    for bad in ("local:0", "local", "10.0.0.5:8786", "dask"):
        with pytest.raises(ParameterError, match="dask"):
            parse_cluster(bad)


def test_rerun_skips_scenes_charted_by_the_same_model(model_uri, tracking, test_dir, tmp_path):
    scenes, out = prep_files(test_dir), tmp_path / "charts"
    first = predict(model_uri, scenes, out)
    assert first.exit_code == 0, first.output
    written = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    again = predict(model_uri, scenes, out)
    assert again.exit_code == 0, again.output
    assert skipped(again.output) == len(scenes) and "2 skipped (products exist)" in again.output
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == written  # nothing rewritten
    run = run_of(again.output)
    assert run.data.metrics["predict_scenes"] == 0 and run.data.metrics["predict_scenes_skipped"] == len(scenes)
    # other layers, or --overwrite, chart them again
    layered = predict(model_uri, scenes, out, "--probabilities", "--uncertainty")
    assert layered.exit_code == 0 and not skipped(layered.output), layered.output
    with xr.open_dataset(out / f"{scenes[0].name.removesuffix('_prep.nc')}_charts.nc") as ds:
        assert {"SOD_probability", "SOD_confidence", "FLOE_entropy", "SIC_spread"} <= set(ds.data_vars)
        assert ds.attrs[SIGNATURE].endswith("layers charts+probabilities+uncertainty")
    overwritten = predict(model_uri, scenes, out, "--probabilities", "--uncertainty", "--overwrite")
    assert overwritten.exit_code == 0 and not skipped(overwritten.output), overwritten.output


def signatures(folder, scene_id: str) -> dict[str, str | None]:
    """The signature each product of a scene records (netCDF attribute, GeoTIFF tag, GeoPackage metadata)."""
    return {
        path.name: recorded_signature(path) for path in sorted(folder.glob(f"{scene_id}_*")) if path.suffix != ".png"
    }


def test_rerun_checks_every_product_and_uncertainty_layer(model_uri, tracking, test_dir, tmp_path):
    scenes, out = prep_files(test_dir)[:1], tmp_path / "charts"
    scene_id = scenes[0].name.removesuffix("_prep.nc")
    every = ("--format", "netcdf,geotiff,vector", "--uncertainty")
    first = predict(model_uri, scenes, out, *every)
    assert first.exit_code == 0, first.output
    signature = signatures(out, scene_id)[f"{scene_id}_charts.nc"]
    layer = out / f"{scene_id}_SOD_entropy.tif"
    assert layer.is_file() and set(signatures(out, scene_id).values()) == {signature}
    # the GeoTIFFs (charts and layers) rewritten by another run; the netCDF product is still the first run's
    other = predict(model_uri, scenes, out, "--format", "geotiff", "--uncertainty", "--crs", "EPSG:3413")
    assert other.exit_code == 0 and not skipped(other.output), other.output
    assert len(set(signatures(out, scene_id).values())) == 2
    again = predict(model_uri, scenes, out, *every)
    assert again.exit_code == 0 and not skipped(again.output), again.output
    assert set(signatures(out, scene_id).values()) == {signature}  # every product charted again
    # an uncertainty-layer GeoTIFF deleted by hand is charted again
    layer.unlink()
    missing = predict(model_uri, scenes, out, *every)
    assert missing.exit_code == 0 and not skipped(missing.output) and layer.is_file(), missing.output
    assert skipped(predict(model_uri, scenes, out, *every).output) == 1  # all there, all the same: skipped


def test_local_cluster_writes_the_single_process_charts(model_uri, tracking, test_dir, tmp_path):
    scenes = prep_files(test_dir)
    bad = tmp_path / "20990101T000000_dmi_prep.nc"
    bad.write_bytes(b"\x89HDF truncated")
    single, batch = tmp_path / "single", tmp_path / "batch"
    alone = predict(model_uri, scenes, single, "--format", "netcdf,geotiff")
    assert alone.exit_code == 0, alone.output
    done = predict(model_uri, [scenes[0], bad, scenes[1]], batch, "--format", "netcdf,geotiff", "--dask", "local:2")
    assert done.exit_code == 1, done.output  # the bad file failed, the others were charted
    assert "Dask cluster of 2 worker(s); dashboard http://127.0.0.1:" in done.output
    failed = [line for line in done.output.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "cannot be opened as netCDF" in failed[0]
    for scene in scenes:
        scene_id = scene.name.removesuffix("_prep.nc")
        assert chart_values(batch / f"{scene_id}_charts.nc") == chart_values(single / f"{scene_id}_charts.nc")
        for chart in CHART_NAMES:
            assert geotiff(batch / f"{scene_id}_{chart}.tif") == geotiff(single / f"{scene_id}_{chart}.tif")
        assert (batch / f"{scene_id}_charts.png").stat().st_size > 0
    assert not list(batch.glob(".*.tmp"))
    run = run_of(done.output)
    assert run.data.params["dask_workers"] == "2" and run.data.params["dask"] == "local:2"
    assert run.data.metrics["predict_scenes"] == 2 and run.data.metrics["predict_scenes_failed"] == 1
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "scene_seconds")
    assert len(history) == 2 and all(m.value > 0 for m in history)
    table = json.loads(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/scenes.json"))
    assert [row[2] for row in table["data"]] == ["written", "failed", "written"]
    # a re-run on the cluster skips what is there, before any task starts
    again = predict(model_uri, scenes, batch, "--format", "netcdf,geotiff", "--dask", "local:1")
    assert again.exit_code == 0 and skipped(again.output) == 2, again.output


def test_upload_package_is_not_written_from_a_cluster(model_uri, tracking, test_dir, tmp_path):
    result = predict(model_uri, prep_files(test_dir), tmp_path / "out", "--dask", "local:1", "--upload-package")
    assert result.exit_code != 0 and "option --upload-package: " in result.output and "--dask" in result.output


@pytest.mark.parametrize("command, signum", [("evaluate", signal.SIGTERM), ("predict", signal.SIGINT)])
def test_an_interrupt_ends_the_command_killed_and_a_rerun_skips_the_scenes_done(
    command, signum, model_uri, tracking, test_dir, tmp_path, monkeypatch
):
    scenes, out = prep_files(test_dir), tmp_path / "charts"
    opened = xr.open_dataset

    def interrupted_while_opening(path, *args, **kwargs):  # the signal lands inside the reader's error handling
        if Path(path).name == scenes[1].name:
            monkeypatch.setattr(xr, "open_dataset", opened)
            os.kill(os.getpid(), signum)
        return opened(path, *args, **kwargs)

    monkeypatch.setattr(xr, "open_dataset", interrupted_while_opening)
    if command == "evaluate":
        args = ["evaluate", "--model-uri", model_uri, "--data-dir", str(test_dir), *FAST]
        result = CliRunner().invoke(cli, args)
    else:
        result = predict(model_uri, scenes, out)
    name = signal.Signals(signum).name
    assert result.exit_code == 128 + signum, result.output
    assert f"{command} interrupted by {name}" in result.output and "Traceback" not in result.output
    assert "FAILED" not in result.output and "download it again" not in result.output
    run = mlflow.get_run(re.search(r"run (\w+) ends KILLED", result.output).group(1))
    assert run.info.status == "KILLED" and not any(m.startswith("test_") for m in run.data.metrics)
    if command == "predict":  # the first scene's products are kept; the re-run charts only the second
        assert (out / f"{scenes[0].name.removesuffix('_prep.nc')}_charts.nc").is_file()
        assert not (out / f"{scenes[1].name.removesuffix('_prep.nc')}_charts.nc").exists()
        assert not list(out.glob(".*.tmp"))
        again = predict(model_uri, scenes, out)
        assert again.exit_code == 0 and skipped(again.output) == 1, again.output
        assert run_of(again.output).data.metrics["predict_scenes"] == 1
