"""Input values that are not finite (NaN, inf) never reach a network: a scene with one such value in each
input group (SAR, incidence angle, distance map, AMSR2, ERA5) reads, trains, evaluates, predicts and
is explained exactly as the scene the rules of :mod:`seaice_mlflow.tasks.autoice.files.nonfinite` make
of it (80 m pixel masked like the fill value, 2 km cell filled from its nearest finite cell); the served
model refuses such a request (tests/test_server.py asks the real server)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import netCDF4
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from seaice_mlflow.cli import cli
from seaice_mlflow.core.errors import SceneError
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES
from seaice_mlflow.tasks.autoice.files.reader import read_scene
from seaice_mlflow.tasks.autoice.files.variables import SAR_VARIABLES
from seaice_mlflow.tasks.autoice.files.windowed import open_scene
from seaice_mlflow.tasks.autoice.store import Store, scene_path
from tests.conftest import prep_files, run_preprocess
from tests.tiny_model import train_tiny_model

EXPERIMENT = "non-finite-test"
FAST = ["--device", "cpu", "--tile", "64", "--overlap", "32"]
#: One value that is not finite in each input group: (variable, value). 80 m variables get it at a pixel
#: of their own inside the swath, 2 km variables at cell (1, 2), whose 3 x 3 neighbours hold its value.
PLANTED = {
    "SAR": ("nersc_sar_secondary", np.nan),
    "incidence angle": ("sar_incidenceangle", np.inf),
    "distance map": ("distance_map", np.nan),
    "AMSR2": ("btemp_36_5h", np.nan),
    "ERA5": ("t2m", -np.inf),
}
CELL = (1, 2)


def plant(source: Path, broken: Path, expected: Path) -> dict[str, tuple[int, int]]:
    """Copy ``source`` to ``broken`` with the :data:`PLANTED` values and to ``expected`` with what the
    readers must make of them; returns each 80 m group's pixel."""
    shutil.copy(source, broken)
    shutil.copy(source, expected)
    pixels = {}
    with netCDF4.Dataset(broken, "a") as bad, netCDF4.Dataset(expected, "a") as good:
        for ds in (bad, good):
            ds.set_auto_mask(False)
        hh, sic = good["nersc_sar_primary"][:], good["SIC"][:]
        inside = np.argwhere((hh != 0) & (sic != 255))
        for k, (group, (name, value)) in enumerate(PLANTED.items()):
            if name in SAR_VARIABLES:
                pixel = pixels[group] = tuple(int(i) for i in inside[(k + 1) * len(inside) // 5])
                bad[name][pixel] = value
                for variable in SAR_VARIABLES:  # masked like the fill value ...
                    good[variable][pixel] = 0
                for chart in CHART_NAMES:  # ... and without charts, as outside the swath
                    good[chart][pixel] = 255
            else:
                values = good[name][:]
                block = (slice(CELL[0] - 1, CELL[0] + 2), slice(CELL[1] - 1, CELL[1] + 2))
                values[block] = values[CELL]  # the nearest finite cells hold its value: the fill is that value
                good[name][:] = values
                values[CELL] = value
                bad[name][:] = values
    return pixels


@pytest.fixture(scope="module")
def planted(ready_dir, tmp_path_factory) -> tuple[Path, Path]:
    """(folder of the two ready scenes with :data:`PLANTED` values, folder of what reading must give)."""
    root = tmp_path_factory.mktemp("non-finite")
    broken, expected = root / "broken", root / "expected"
    broken.mkdir(), expected.mkdir()
    for path in prep_files(ready_dir):
        plant(path, broken / path.name, expected / path.name)
    return broken, expected


def read_arrays(path: Path, reader: str) -> dict[str, np.ndarray]:
    """Every input and chart of a scene as the given reader hands them out (window reads for open_scene)."""
    if reader == "read_scene":
        scene = read_scene(path)
        return {**scene.sar, **scene.coarse, **scene.charts, "valid": scene.sar_valid}
    with open_scene(path) as scene:
        from seaice_mlflow.core.tiling import Window

        sar = scene.read_sar(SAR_VARIABLES, Window(0, 0, *scene.shape))
        return {**sar, **scene.coarse, **scene.charts, "valid": scene.sar_valid}


@pytest.mark.parametrize("reader", ["read_scene", "open_scene"])
def test_every_reader_masks_80_m_values_and_fills_2_km_cells(planted, reader):
    broken, expected = planted
    for path in prep_files(broken):
        got, want = read_arrays(path, reader), read_arrays(expected / path.name, reader)
        assert set(got) == set(want)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    scene = read_scene(prep_files(broken)[0])
    assert scene.non_finite.masked == {"nersc_sar_secondary": 1, "sar_incidenceangle": 1, "distance_map": 1}
    assert scene.non_finite.masked_pixels == 3 and scene.non_finite.filled == {"btemp_36_5h": 1, "t2m": 1}


def test_a_raw_file_with_values_that_are_not_finite_reads_finite(raw_dir, tmp_path):
    path = tmp_path / sorted(raw_dir.glob("*.nc"))[0].name
    shutil.copy(sorted(raw_dir.glob("*.nc"))[0], path)
    with netCDF4.Dataset(path, "a") as ds:
        ds.set_auto_mask(False)
        ds["btemp_89_0v"][0, 0] = np.nan
        ds["u10m_rotated"][:, 1] = np.nan
        distance = ds["distance_map"][:]
        lines, samples = np.argwhere(np.isfinite(ds["nersc_sar_primary"][:]) & (distance > 0))[len(distance) // 2] // 2
        distance[2 * lines : 2 * lines + 2, 2 * samples : 2 * samples + 2] = np.nan  # a whole 80 m pixel
        ds["distance_map"][:] = distance
    scene = read_scene(path)
    assert all(np.isfinite(v).all() for v in (*scene.sar.values(), *scene.coarse.values()))
    assert scene.non_finite.filled == {"btemp_89_0v": 1, "u10m_rotated": scene.coarse_shape[0]}
    assert scene.non_finite.masked == {"distance_map": 1} and not scene.sar_valid[lines, samples]
    assert all(scene.charts[c][lines, samples] == 255 for c in CHART_NAMES)


def test_inspect_reports_what_is_not_finite_and_refuses_what_cannot_be_repaired(planted, tmp_path):
    broken, _ = planted
    files = prep_files(broken)
    result = CliRunner().invoke(cli, ["inspect", *map(str, files), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["files"][0]
    assert report["non_finite"] == {"masked": {"nersc_sar_secondary": 1, "sar_incidenceangle": 1, "distance_map": 1},
                                    "masked_pixels": 3, "filled": {"btemp_36_5h": 1, "t2m": 1}}  # fmt: skip
    text = CliRunner().invoke(cli, ["inspect", str(files[0])]).output
    assert "3 80 m pixel(s) masked as no data" in text and "filled from the nearest finite cell: btemp_36_5h 1" in text
    for name, variable in (("empty", "btemp_6_9h"), ("lost", "sar_grid2d_latitude")):
        damaged = tmp_path / name / files[0].name
        damaged.parent.mkdir()
        shutil.copy(files[0], damaged)
        with netCDF4.Dataset(damaged, "a") as ds:
            ds[variable][:] = np.nan
        with pytest.raises(SceneError, match="btemp_6_9h holds no finite value|latitude tie points are not finite"):
            read_scene(damaged)
        bad = CliRunner().invoke(cli, ["inspect", str(damaged)])
        assert bad.exit_code == 1 and "BAD" in bad.output and "Traceback" not in bad.output


def test_training_store_holds_the_repaired_scene_and_old_stores_are_refused(planted, tmp_path, tracking):
    broken, expected = planted
    stores = {}
    for name, folder in (("broken", broken), ("expected", expected)):
        run_preprocess(folder, tmp_path / name)
        stores[name] = Store(tmp_path / name)
    for scene in stores["expected"].scenes():
        with netCDF4.Dataset(scene_path(stores["broken"].root, scene.scene_id)) as got, netCDF4.Dataset(
            scene_path(stores["expected"].root, scene.scene_id)
        ) as want:  # fmt: skip
            for variable in ("sar", "coarse", "charts", "valid", "border", "land"):
                np.testing.assert_array_equal(got[variable][:], want[variable][:], err_msg=variable)
    record = stores["broken"].scenes()[0].record
    assert record["non_finite"]["filled"] == {"btemp_36_5h": 1, "t2m": 1}
    # a store written before preprocess filled 2 km cells: training refuses it in one line
    scene = stores["broken"].scenes()[0]
    with netCDF4.Dataset(scene_path(stores["broken"].root, scene.scene_id), "a") as ds:
        ds["coarse"][0, 0, 0] = np.nan
    result = CliRunner().invoke(cli, ["train", "--store", str(stores["broken"].root), "--out", str(tmp_path / "ckpt"),
                                      "--epochs", "1", "--device", "cpu", "--workers", "0"])  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"scene {scene.scene_id} holds AMSR2/ERA5 values that are not finite" in result.output
    assert "seaice preprocess --overwrite" in result.output


def test_the_final_guard_stops_what_did_not_come_through_a_reader(planted):
    """A scene changed after reading (or built by hand) with a NaN: assembling model inputs refuses it."""
    from seaice_mlflow.core.errors import SeaIceError
    from seaice_mlflow.core.tiling import Window
    from seaice_mlflow.tasks.autoice.sources import SceneTiles

    scene = read_scene(prep_files(planted[1])[0])
    tiles = SceneTiles(scene, ("nersc_sar_primary", "t2m", "month"))
    assert np.isfinite(tiles.read(Window(0, 0, 32, 32))).all()
    scene.coarse["t2m"][0, 0] = np.nan
    with pytest.raises(
        SeaIceError, match=f"scene {scene.scene_id}: input t2m holds 1 value\\(s\\) that are not finite"
    ):
        tiles.read(Window(0, 0, 32, 32))
    scene.coarse["t2m"][0, 0] = 0
    scene.sar["nersc_sar_primary"][3, 4] = np.inf
    with pytest.raises(SeaIceError, match="input nersc_sar_primary holds 1 value"):
        tiles.read(Window(0, 0, 32, 32))


@pytest.fixture(scope="module")
def model_uri(store_uri, ready_dir, tmp_path_factory) -> str:
    return train_tiny_model(ready_dir, tmp_path_factory.mktemp("non-finite-model"), store_uri, EXPERIMENT)[0]


def test_evaluate_scores_the_repaired_scene(planted, model_uri, tracking):
    scores, output = {}, {}
    for folder in planted:
        result = CliRunner().invoke(cli, ["evaluate", "--model-uri", model_uri, "--data-dir", str(folder), *FAST])
        assert result.exit_code == 0, result.output
        [run] = mlflow.search_runs(experiment_names=[EXPERIMENT], output_format="list", max_results=1,
                                   order_by=["attributes.start_time DESC"])  # fmt: skip
        scores[folder.name] = {k: v for k, v in run.data.metrics.items() if k.startswith("test_")}
        output[folder.name] = result.output
    assert scores["broken"] == scores["expected"] and np.isfinite(scores["broken"]["test_combined"])
    assert "3 80 m pixel(s) masked as no data" in output["broken"] and "masked" not in output["expected"]


def test_predict_charts_the_repaired_scene_and_says_so_in_the_products(planted, model_uri, tracking, tmp_path):
    for folder in planted:
        result = CliRunner().invoke(cli, ["predict", "--model-uri", model_uri, "--scenes", str(folder), "--out",
                                          str(tmp_path / folder.name), "--upload-package", *FAST])  # fmt: skip
        assert result.exit_code == 0, result.output
    for path in prep_files(planted[1]):
        product = f"{path.name.removesuffix('_prep.nc')}_charts.nc"
        with xr.open_dataset(tmp_path / "broken" / product) as got, xr.open_dataset(tmp_path / "expected" / product) \
                as want:  # fmt: skip
            for chart in CHART_NAMES:
                np.testing.assert_array_equal(got[chart].values, want[chart].values, err_msg=chart)
            assert "input_repairs" not in want.attrs
            assert "3 80 m pixel(s) masked as no data" in got.attrs["input_repairs"]
            assert "btemp_36_5h 1, t2m 1" in got.attrs["input_repairs"]
    with xr.open_dataset(tmp_path / "broken" / "upload_package.nc") as got, xr.open_dataset(
        tmp_path / "expected" / "upload_package.nc"
    ) as want:  # fmt: skip
        assert got.equals(want)


def test_explain_attributes_the_repaired_scene(planted, model_uri, tracking, tmp_path):
    rows = {}
    for folder in planted:
        result = CliRunner().invoke(cli, ["explain", "--model-uri", model_uri, "--data-dir", str(folder), "--patches",
                                          "3", "--patch-size", "32", "--methods", "ig", "--steps", "4", "--out",
                                          str(tmp_path / folder.name), "--device", "cpu", "--json"])  # fmt: skip
        assert result.exit_code == 0, result.output
        rows[folder.name] = json.loads(result.stdout)
    assert rows["broken"] == rows["expected"]
    assert any(r["share"] > 0 for r in rows["broken"] if r["method"] == "ig")


def test_the_served_model_refuses_values_that_are_not_finite_naming_the_channel(model_uri, tracking):
    model = mlflow.pyfunc.load_model(model_uri, model_config={"device": "cpu"})
    variables = model.unwrap_python_model().recipe.variables
    x = np.zeros((1, len(variables), 32, 32), np.float32)
    assert set(model.predict(x)) == set(CHART_NAMES)
    channel = variables.index("btemp_36_5h")
    x[0, channel, 5, 7] = np.nan
    with pytest.raises(mlflow.exceptions.MlflowException, match=f"input channel\\(s\\) {channel} \\(btemp_36_5h: 1"):
        model.predict(x)
