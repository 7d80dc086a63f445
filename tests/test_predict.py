"""seaice predict: CF chart files with provenance, probabilities, upload package, bad scenes, MLproject."""

from __future__ import annotations

import json
import re
import warnings
from datetime import datetime
from pathlib import Path

import mlflow
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from seaice_mlflow import __version__
from seaice_mlflow.cli import cli
from seaice_mlflow.core.errors import SeaIceError
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES, CHARTS
from seaice_mlflow.tasks.autoice.files.reader import read_scene
from seaice_mlflow.tasks.autoice.prediction import ChartJob, expand_scene_paths, predict_files
from seaice_mlflow.tasks.autoice.upload import read_upload_package
from tests.conftest import prep_files
from tests.tiny_model import ROOT, train_tiny_model, use_tracking

EXPERIMENT = "predict-test"
NAME = "predict-charts"
FAST = ["--device", "cpu", "--tile", "64", "--overlap", "32"]


@pytest.fixture(scope="module")
def registered(store_uri, ready_dir, tmp_path_factory) -> tuple[str, str]:
    """A tiny trained model registered as version 1 of NAME, alias champion, stage Production;
    (models:/m-... URI, version)."""
    model_uri, _ = train_tiny_model(ready_dir, tmp_path_factory.mktemp("predict-train"), store_uri, EXPERIMENT)
    with pytest.MonkeyPatch.context() as patch:
        use_tracking(patch, store_uri, EXPERIMENT)
        client = mlflow.MlflowClient()
        version = str(mlflow.register_model(model_uri, NAME).version)
        client.set_registered_model_alias(NAME, "champion", version)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            client.transition_model_version_stage(NAME, version, "Production")
    return model_uri, version


def predict(*args: str):
    return CliRunner().invoke(cli, ["predict", *args])


def run_id_of(output: str) -> str:
    return re.search(r"^run ([0-9a-f]{32})", output, re.M).group(1)


def test_chart_files_are_cf_netcdf_with_provenance(registered, tracking, test_dir, tmp_path):
    model_uri, version = registered
    out = tmp_path / "charts"
    result = predict(
        "--model-uri",
        f"models:/{NAME}/Production",
        "--scenes",
        str(test_dir),
        "--out",
        str(out),
        "--upload-package",
        *FAST,
    )
    assert result.exit_code == 0, result.output
    package = read_upload_package(out / "upload_package.nc")
    assert not list(out.glob(".*.tmp"))  # written atomically: no temporary files left
    for path in prep_files(test_dir):
        scene = read_scene(path)
        product = out / f"{scene.scene_id}_charts.nc"
        assert (out / f"{scene.scene_id}_charts.png").stat().st_size > 0
        with xr.open_dataset(product, mask_and_scale=False) as ds:
            assert ds.attrs["Conventions"] == "CF-1.9" and ds.attrs["scene_id"] == scene.scene_id
            assert ds.attrs["model_uri"] == f"models:/{NAME}/Production"
            assert ds.attrs["model_id"] == model_uri.removeprefix("models:/")
            assert ds.attrs["registered_model_name"] == NAME and ds.attrs["registered_model_version"] == version
            assert ds.attrs["source_scene_file"] == path.name and ds.attrs["software_version"] == __version__
            assert ds.attrs["mlflow_run_id"] == run_id_of(result.output)
            datetime.strptime(ds.attrs["date_created"], "%Y-%m-%dT%H:%M:%SZ")
            valid = scene.sar_valid
            for chart in CHART_NAMES:
                var = ds[chart]
                assert var.dims == ("sar_lines", "sar_samples") and var.dtype == np.uint8
                assert var.attrs["_FillValue"] == 255 and var.attrs["long_name"].startswith(CHARTS[chart].long_name)
                assert list(var.attrs["flag_values"]) == list(CHARTS[chart].flag_values)
                assert var.attrs["flag_meanings"] == CHARTS[chart].flag_meanings
                values = var.values
                assert np.all(values[~valid] == 255) and values[valid].max() < CHARTS[chart].n_classes
                np.testing.assert_array_equal(values[valid], package[scene.scene_id][chart][valid])
            np.testing.assert_allclose(ds["sar_grid2d_latitude"].values, scene.latitude)
            assert ds["sar_grid2d_longitude"].attrs["long_name"].startswith("longitude (degrees east) of the 21 x 21")
            np.testing.assert_allclose(ds["longitude"].values[[0, -1], [0, -1]], scene.longitude[[0, -1], [0, -1]])
            assert "SOD_probability" not in ds
        with xr.open_dataset(product) as decoded:  # CF decoding masks the fill value
            assert np.isnan(decoded["SOD"].values[~valid]).all()
    scored = CliRunner().invoke(
        cli, ["score", "--reference", str(test_dir), "--predictions", str(out / "upload_package.nc")]
    )
    assert scored.exit_code == 0, scored.output


def test_probabilities_by_alias_for_a_raw_scene(registered, tracking, raw_dir, tmp_path):
    out = tmp_path / "charts"
    raw = sorted(raw_dir.glob("S1*.nc"))[0]
    result = predict(
        "--model-uri",
        f"models:/{NAME}@champion",
        "--scenes",
        str(raw),
        "--out",
        str(out),
        "--probabilities",
        "true",
        *FAST,
    )
    assert result.exit_code == 0, result.output
    scene = read_scene(raw)
    with xr.open_dataset(out / f"{scene.scene_id}_charts.nc", mask_and_scale=False) as ds:
        assert ds.attrs["registered_model_version"] == registered[1] and ds.attrs["source_scene_file"] == raw.name
        assert ds["SOD"].shape == scene.shape
        sic = ds["SIC_value"]  # the tiny model regresses SIC
        assert sic.dtype == np.float32 and sic.attrs["units"] == "%"
        assert np.isnan(sic.values[~scene.sar_valid]).all() and np.nanmax(sic.values) <= 100
        for chart in ("SOD", "FLOE"):
            prob = ds[f"{chart}_probability"]
            assert prob.dims == (f"{chart}_class", "sar_lines", "sar_samples") and prob.dtype == np.uint8
            inside = prob.values[:, scene.sar_valid].astype(int)
            assert np.all(np.abs(inside.sum(axis=0) - 100) <= CHARTS[chart].n_classes)
            assert np.mean(inside.argmax(axis=0) == ds[chart].values[scene.sar_valid]) > 0.99
            assert list(ds[f"{chart}_class"].values) == list(range(CHARTS[chart].n_classes))


def test_bad_scene_in_the_list_is_reported_and_skipped(registered, tracking, test_dir, tmp_path):
    model_uri, _ = registered
    bad = tmp_path / "20990101T000000_dmi_prep.nc"
    bad.write_bytes(b"\x89HDF truncated")
    good = prep_files(test_dir)
    reference = sorted(test_dir.glob("*_prep_reference.nc"))[0]
    out = tmp_path / "charts"
    result = predict(
        "--model-uri",
        model_uri,
        "--scenes",
        f"{good[0]},{bad}",
        "--scenes",
        str(reference),
        "--scenes",
        str(good[1]),
        "--out",
        str(out),
        *FAST,
    )
    assert result.exit_code == 1
    failed = [line for line in result.output.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 2
    assert "20990101T000000_dmi_prep.nc: cannot be opened as netCDF" in failed[0]
    assert "is a test reference (charts only), not a scene" in failed[1]
    assert sorted(p.name for p in out.glob("*.nc")) == sorted(f"{read_scene(p).scene_id}_charts.nc" for p in good)
    run = mlflow.get_run(run_id_of(result.output))
    assert run.info.status == "FINISHED" and run.data.metrics["predict_scenes_failed"] == 2
    listed = json.loads(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/outputs.json"))
    assert len(listed["files"]) == 2
    assert {Path(f["source"]).name for f in listed["failed"]} == {bad.name, reference.name}
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "quicklooks")}
    assert len(artifacts) == 2


def test_bad_parameters_fail_in_one_line(registered, tracking, test_dir, tmp_path):
    model_uri, _ = registered
    result = predict("--model-uri", model_uri, "--scenes", str(tmp_path), "--out", str(tmp_path / "o"), *FAST)
    assert result.exit_code == 1 and "option --scenes: no scene files in" in result.output
    result = predict(
        "--model-uri", f"models:/{NAME}/Staging", "--scenes", str(test_dir), "--out", str(tmp_path / "o"), *FAST
    )
    assert result.exit_code == 1
    assert (
        f"option --model-uri: models:/{NAME}/Staging: registered model {NAME} has no version in stage "
        "Staging; register or promote one first" in result.output
    )
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_unwritable_out_fails_before_the_model_is_loaded(tracking, test_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = predict(
        "--model-uri", "models:/no-such-model/1", "--scenes", str(test_dir), "--out", str(blocker / "charts"), *FAST
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"option --out: {blocker / 'charts'} cannot be created: {blocker} is a file" in result.output
    assert "no-such-model" not in result.output


def test_missing_scene_path_is_reported_as_missing(tmp_path):
    missing = tmp_path / "missing" / "path"
    failed = []
    with pytest.raises(SeaIceError, match=r"none of the 1 scene file\(s\) could be charted \(path: does not exist"):
        predict_files(None, expand_scene_paths([missing]), ChartJob(tmp_path / "out", {}), on_scene=failed.append)
    [outcome] = failed
    assert outcome.file == missing and outcome.message.startswith(f"path: does not exist: {missing}.")
    assert "naming" not in outcome.message


def test_mlflow_run_predict(registered, tracking, test_dir, tmp_path):
    files = prep_files(test_dir)
    submitted = mlflow.projects.run(
        str(ROOT),
        entry_point="predict",
        env_manager="local",
        experiment_name="project-predict",
        parameters={
            "model_uri": f"models:/{NAME}@champion",
            "scenes": f"{files[0]},{files[1]}",
            "out": str(tmp_path / "charts"),
            "device": "cpu",
            "tile": 64,
            "upload_package": "true",
        },
    )
    assert submitted.wait()
    run = mlflow.get_run(submitted.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["predict_scenes"] == 2
    assert run.data.tags["seaice.registered_model"] == f"{NAME}/{registered[1]}"
    assert len(list((tmp_path / "charts").glob("*_charts.nc"))) == 2
    assert (tmp_path / "charts" / "upload_package.nc").is_file()
