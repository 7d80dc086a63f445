"""preprocess: store round trip, re-runs, interruptions, bad scenes, splits, MLflow logging."""

import json
import signal
import subprocess
import sys
import time

import mlflow
import netCDF4
import numpy as np
import pytest
from click.testing import CliRunner

from seaice_mlflow.cli import cli
from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.core.tiling import Window
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES
from seaice_mlflow.tasks.autoice.conversion import validation_count
from seaice_mlflow.tasks.autoice.downsample import downsample_chart, downsample_mean
from seaice_mlflow.tasks.autoice.files.reader import read_scene
from seaice_mlflow.tasks.autoice.files.variables import INPUT_VARIABLES, SAR_VARIABLES
from seaice_mlflow.tasks.autoice.layers import border_distance, land_mask
from seaice_mlflow.tasks.autoice.store import SCENES, Store, StoreError, scene_path
from seaice_mlflow.tasks.autoice.synthetic import synthesize
from tests.conftest import prep_files
from tests.conftest import run_preprocess as run


@pytest.fixture(scope="module")
def store(ready_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("store")
    run(ready_dir, out, val_scenes=1, workers=2)
    return Store(out)


def test_store_round_trip_equals_reader(store, ready_dir):
    for path in prep_files(ready_dir):
        scene = read_scene(path)
        [stored] = [s for s in store.scenes() if s.scene_id == scene.scene_id]
        window = Window(5, 7, 60, 90)
        expected, got = scene.inputs(INPUT_VARIABLES, window), stored.inputs(INPUT_VARIABLES, window)
        n_sar = len(SAR_VARIABLES)
        np.testing.assert_allclose(got[:n_sar], expected[:n_sar], atol=1.01e-3)  # int16 packing, 0.002 steps
        np.testing.assert_array_equal(got[n_sar:], expected[n_sar:])  # 2 km variables and encodings exact
        charts = stored.read_charts(window)
        for k, chart in enumerate(CHART_NAMES):
            np.testing.assert_array_equal(charts[k], scene.charts[chart][window.slices])
        np.testing.assert_array_equal(stored.read_valid(window), scene.sar_valid[window.slices])
        border = border_distance([scene.charts[c] for c in CHART_NAMES])
        np.testing.assert_array_equal(stored.read_layer("border", window), border[window.slices])
        land = land_mask(scene.sar["distance_map"])[window.slices]
        np.testing.assert_array_equal(stored.read_layer("land", window), land)
        assert stored.layers == ("border", "land")


def test_manifest(store, ready_dir):
    manifest = store.manifest
    assert manifest["schema_version"] == 1 and manifest["parameters"]["downsample"] == 1
    assert sorted(s["split"] for s in manifest["scenes"]) == ["train", "val"]
    scene = manifest["scenes"][0]
    assert len(scene["source"]["sha256"]) == 64 and scene["histograms"]["SIC"][-1] >= 0
    assert len(scene["histograms"]["SOD"]) == 7
    assert (store.root / "normalisation.json").is_file()
    assert len(store.digest) == 64


def test_downsampled_store(ready_dir, tmp_path):
    run(ready_dir, tmp_path, downsample=3)
    stored = Store(tmp_path).scenes()[0]
    scene = read_scene(ready_dir / f"{stored.scene_id}_prep.nc")
    assert stored.shape == (32, 43)  # ceil(96 / 3), ceil(128 / 3)
    expected_sic = downsample_chart(scene.charts["SIC"], 3)
    np.testing.assert_array_equal(stored.read_charts()[0], expected_sic)
    expected_hh = downsample_mean(scene.sar["nersc_sar_primary"], 3, scene.sar_valid)
    got = stored.inputs(["nersc_sar_primary", "btemp_6_9h"])
    np.testing.assert_allclose(got[0], expected_hh, atol=1.01e-3)
    assert got[1, 7, 7] == scene.coarse["btemp_6_9h"][0, 0] and got[1, 9, 9] == scene.coarse["btemp_6_9h"][1, 1]


def test_downsample_rules():
    values = np.array([[1, 3, 5], [0, 0, 7], [2, 2, 9]], dtype=np.float32)
    valid = values != 0
    assert downsample_mean(values, 2, valid).tolist() == [[2.0, 6.0], [2.0, 9.0]]
    chart = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=np.uint8)
    assert downsample_chart(chart, 2).tolist() == [[5, 255], [255, 255]]


def test_rerun_skips_and_overwrite_redoes(ready_dir, tmp_path):
    first = run(ready_dir, tmp_path)
    assert len(first.processed) == 2 and not first.skipped
    stamp = {p.name: p.stat().st_mtime_ns for p in (tmp_path / SCENES).iterdir()}
    again = run(ready_dir, tmp_path)
    assert not again.processed and len(again.skipped) == 2
    assert stamp == {p.name: p.stat().st_mtime_ns for p in (tmp_path / SCENES).iterdir()}
    assert len(run(ready_dir, tmp_path, overwrite=True).processed) == 2
    assert len(run(ready_dir, tmp_path, downsample=2).processed) == 2  # other parameters: redo
    for scene in Store(tmp_path).scenes()[:1]:  # a scene of a store written before the filter layers
        record = {k: v for k, v in scene.record.items() if k not in ("layers", "split")}
        with netCDF4.Dataset(scene_path(tmp_path, scene.scene_id), "a") as ds:
            ds.setncattr("record", json.dumps(record))
    again = run(ready_dir, tmp_path, downsample=2)
    assert len(again.processed) == 1 and len(again.skipped) == 1


def test_bad_scenes_are_reported_and_skipped(ready_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for path in prep_files(ready_dir):
        (data / path.name).symlink_to(path)
    (data / "20200101T000000_dmi_prep.nc").write_bytes(b"truncated")
    synthesize(data, n_scenes=1, size=(64, 64), split="test", seed=99)
    for reference in data.glob("*_reference.nc"):
        reference.unlink()  # a test scene without its reference has no charts
    result = CliRunner().invoke(
        cli,
        [
            "preprocess",
            "--data-dir",
            str(data),
            "--out",
            str(tmp_path / "store"),
            "--val-scenes",
            "0",
            "--workers",
            "2",
        ],
        env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"},
    )
    assert result.exit_code == 1
    assert "20200101T000000_dmi_prep.nc: cannot be opened as netCDF" in result.output
    assert "has no charts" in result.output
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert len(manifest["scenes"]) == 2 and len(manifest["failed"]) == 2


def test_killed_worker_leaves_no_corrupt_scene(tmp_path):
    data = tmp_path / "data"
    synthesize(data, n_scenes=1, size=(1500, 1500), seed=5)
    out = tmp_path / "store"
    code = (
        "from seaice_mlflow.tasks.autoice.conversion import preprocess; "
        "from seaice_mlflow.tasks.autoice.files.variables import "
        f"SCENE_VARIABLES; preprocess({str(data)!r}, {str(out)!r}, downsample=1, variables=SCENE_VARIABLES, "
        "val_scenes=0, val_list=None, workers=1, overwrite=False, seed=0)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])

    def partial_files():
        return list((out / SCENES).glob(".*.tmp")) if (out / SCENES).exists() else []

    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not partial_files():
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # mid-scene: the scene file is being written
    proc.wait()
    for path in (out / SCENES).glob("*.nc") if (out / SCENES).exists() else []:
        with netCDF4.Dataset(path) as ds:  # whatever landed under a final name is complete
            assert "record" in ds.ncattrs()
    result = run(data, out)
    assert len(result.processed) + len(result.skipped) == 1 and not result.failed
    assert not list((out / SCENES).glob(".*.tmp"))


def test_validation_split_options(ready_dir, tmp_path):
    ids = sorted(p.name[:19] for p in prep_files(ready_dir))
    val_list = tmp_path / "val.txt"
    val_list.write_text(ids[1] + "\n")
    result = run(ready_dir, tmp_path / "a", val_list=val_list)
    assert {s["scene_id"]: s["split"] for s in result.manifest["scenes"]} == {ids[0]: "train", ids[1]: "val"}
    val_list.write_text("20990101T000000_dmi\n")
    with pytest.raises(ParameterError, match="not training scenes"):
        run(ready_dir, tmp_path / "b", val_list=val_list)
    with pytest.raises(ParameterError, match="only 2 training scenes"):
        run(ready_dir, tmp_path / "c", val_scenes=5)


def test_the_default_validation_share_suits_small_and_large_folders(ready_dir, tmp_path, monkeypatch):
    assert [validation_count("auto", n) for n in (0, 1, 2, 9, 15, 40, 513)] == [0, 0, 1, 1, 2, 4, 10]
    assert validation_count("3", 40) == 3 and validation_count(0, 40) == 0  # an explicit number is exact
    with pytest.raises(ParameterError, match="option --val-scenes: 'some' is neither a number nor auto"):
        validation_count("some", 4)
    with pytest.raises(ParameterError, match="option --val-scenes: must be >= 0"):
        validation_count("-1", 4)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "val-share")
    done = CliRunner().invoke(cli, ["preprocess", "--data-dir", str(ready_dir), "--out", str(tmp_path / "s")])
    assert done.exit_code == 0, done.output  # 2 scenes with the defaults: 1 validates
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert sorted(s["split"] for s in manifest["scenes"]) == ["train", "val"]


def test_test_scenes_keep_their_split(test_dir, tmp_path):
    result = run(test_dir, tmp_path)
    assert {s["split"] for s in result.manifest["scenes"]} == {"test"}


def test_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="not a training store"):
        Store(tmp_path)


def test_preprocess_logs_to_mlflow(ready_dir, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "pre")
    result = CliRunner().invoke(
        cli,
        [
            "preprocess",
            "--data-dir",
            str(ready_dir),
            "--out",
            str(tmp_path / "store"),
            "--val-scenes",
            "1",
            "--downsample",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    mlflow.set_tracking_uri(uri)
    [run_] = mlflow.search_runs(experiment_names=["pre"], output_format="list")
    assert run_.data.params["downsample"] == "2" and run_.data.params["val_scenes"] == "1"
    assert run_.data.metrics["scenes"] == 2 and run_.data.tags["seaice.store_digest"]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_.info.run_id, "store")}
    assert {"store/manifest.json", "store/class_histograms.png", "store/normalisation.json"} <= artifacts
    assert run_.inputs.dataset_inputs and run_.inputs.dataset_inputs[0].dataset.name == ready_dir.name
