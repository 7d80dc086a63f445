"""Reading every kind of AI4Arctic file, and clear errors for malformed ones."""

import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from seaice_mlflow.core.errors import SceneError
from seaice_mlflow.core.tiling import Window
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES
from seaice_mlflow.tasks.autoice.files.naming import find_scene_files, parse_scene_name
from seaice_mlflow.tasks.autoice.files.prep import read_charts
from seaice_mlflow.tasks.autoice.files.reader import find_references, read_scene
from seaice_mlflow.tasks.autoice.files.variables import INPUT_VARIABLES, SCENE_VARIABLES, check_input_variables
from seaice_mlflow.tasks.autoice.grid import coarse_indices, month_encoding, tie_point_field
from tests.conftest import SIZE, prep_files


def test_ready_scene(ready_dir):
    path = prep_files(ready_dir)[0]
    scene = read_scene(path)
    assert scene.kind == "ready"
    assert scene.shape == SIZE
    assert scene.coarse_shape == (SIZE[0] // 25, SIZE[1] // 25)
    assert scene.scene_id == path.name[:19] and scene.provider in ("dmi", "cis")
    assert scene.date.strftime("%Y%m%dT%H%M%S") == path.name[:15]
    assert set(scene.charts) == set(CHART_NAMES)
    assert all(c.dtype == np.uint8 and c.shape == SIZE for c in scene.charts.values())
    assert scene.latitude.shape == (21, 21) and scene.latitude.dtype == np.float64
    assert 0.3 < scene.sar_valid.mean() <= 1.0


def test_test_scene_joins_its_reference(test_dir):
    path = prep_files(test_dir)[0]
    scene = read_scene(path)
    assert scene.kind == "test" and scene.has_charts
    assert read_scene(path, reference=False).charts == {}
    reference = test_dir / path.name.replace("_prep.nc", "_prep_reference.nc")
    assert np.array_equal(read_charts(reference)["SOD"], scene.charts["SOD"])


def test_raw_test_scene_joins_its_reference(raw_test_dir):
    [path] = find_scene_files(raw_test_dir)
    scene = read_scene(path)
    assert scene.kind == "raw" and scene.shape == SIZE and scene.has_charts


def test_inputs_are_selected_by_name(ready_dir):
    scene = read_scene(prep_files(ready_dir)[0])
    stack = scene.inputs(SCENE_VARIABLES)
    assert stack.shape == (24, *SIZE) and stack.dtype == np.float32
    assert np.array_equal(stack[1], scene.sar["nersc_sar_secondary"])
    swapped = scene.inputs(["btemp_89_0v", "nersc_sar_primary"])
    assert np.array_equal(swapped[1], scene.sar["nersc_sar_primary"])
    window = Window(10, 20, 30, 40)
    assert np.array_equal(scene.inputs(INPUT_VARIABLES, window), scene.inputs(INPUT_VARIABLES)[:, 10:40, 20:60])


def test_coarse_grid_aligns_25_pixels_per_cell(ready_dir):
    scene = read_scene(prep_files(ready_dir)[0])  # 96 x 128 px: 3 x 5 cells
    fine = scene.inputs(["btemp_6_9h"])[0]
    coarse = scene.coarse["btemp_6_9h"]
    assert fine[24, 24] == coarse[0, 0] and fine[25, 25] == coarse[1, 1]
    assert fine[95, 127] == coarse[2, 4]  # pixels past the last full cell belong to it
    assert np.array_equal(coarse_indices(70, 80, 3), [2] * 5 + [2] * 5)
    assert np.array_equal(scene.inputs(["btemp_6_9h"], Window(24, 49, 3, 3))[0], fine[24:27, 49:52])


def test_coarse_cells_on_a_downsampled_grid():
    # x10: working pixel i covers 80 m pixels [10i, 10i + 10), centre 10i + 4.5
    assert coarse_indices(0, 6, 100, downsample=10).tolist() == [0, 0, 0, 1, 1, 2]


def test_tie_points_interpolate_exactly_at_grid_and_linearly_between():
    grid = np.add.outer(np.arange(21) * 2.0, np.arange(21) * 3.0)
    field = tie_point_field(grid, (201, 401))
    assert field[0, 0] == 0 and field[200, 400] == grid[-1, -1]
    assert np.isclose(field[5, 10], 2 * 5 / 10 + 3 * 10 / 20)
    coarse = tie_point_field(grid, (201, 401), downsample=10)  # pixel centres at 4.5, 14.5, ...
    assert coarse.shape == (21, 41) and np.isclose(coarse[1, 2], 2 * 14.5 / 10 + 3 * 24.5 / 20)


def test_encodings():
    assert month_encoding(1) == -1 and month_encoding(12) == 1
    check_input_variables(["month", "sin_lat", "nersc_sar_primary"])
    with pytest.raises(ValueError, match="unknown input variable"):
        check_input_variables(["nersc_sar_tertiary"])


def test_references_are_found(test_dir, ready_dir):
    assert set(find_references(test_dir)) == {p.name[:19] for p in prep_files(test_dir)}
    assert set(find_references(ready_dir)) == {p.name[:19] for p in prep_files(ready_dir)}


# --- malformed files -------------------------------------------------------------------------


def copy_scene(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    return dst


def rewrite(src: Path, dst: Path, drop=(), zero=(), replace=None):
    """Copy a netCDF file variable by variable, dropping or zeroing some, or replacing some with
    other arrays (``replace``: name -> array, written with the array's dtype)."""
    replace = replace or {}
    with netCDF4.Dataset(src) as a, netCDF4.Dataset(dst, "w") as b:
        for name, dim in a.dimensions.items():
            b.createDimension(name, len(dim))
        for name, var in a.variables.items():
            if name in drop:
                continue
            values = replace.get(name, var[:])
            out = b.createVariable(name, values.dtype if name in replace else var.dtype, var.dimensions)
            out.setncatts(var.__dict__)
            out[:] = np.zeros_like(values) if name in zero else values


def test_not_netcdf(tmp_path):
    path = tmp_path / "20180101T000000_dmi_prep.nc"
    path.write_text("this is an HTML error page, not a scene")
    with pytest.raises(SceneError, match=r"20180101T000000_dmi_prep.nc: cannot be opened as netCDF.*download it again"):
        read_scene(path)


def test_truncated_file(ready_dir, tmp_path):
    src = prep_files(ready_dir)[0]
    dst = tmp_path / src.name
    dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(SceneError, match="download it again"):
        read_scene(dst)


def test_missing_variables_are_listed(ready_dir, tmp_path):
    src = prep_files(ready_dir)[0]
    dst = tmp_path / src.name
    rewrite(src, dst, drop=("btemp_36_5h", "t2m"))
    with pytest.raises(SceneError, match="missing variable.*btemp_36_5h, t2m"):
        read_scene(dst)


def test_wrong_dims(ready_dir, tmp_path):
    dst = copy_scene(prep_files(ready_dir)[0], tmp_path)
    with netCDF4.Dataset(dst, "a") as ds:  # a SAR variable on the 2 km grid
        ds.renameVariable("nersc_sar_secondary", "old_hv")
        var = ds.createVariable("nersc_sar_secondary", "f4", ("2km_grid_lines", "2km_grid_samples"))
        var[:] = 0
    with pytest.raises(SceneError, match=r"wrong dimensions: nersc_sar_secondary has dims"):
        read_scene(dst)


def test_scene_smaller_than_asked(ready_dir):
    with pytest.raises(SceneError, match=r"smaller than the 256x256 asked for"):
        read_scene(prep_files(ready_dir)[0], min_size=(256, 256))


def test_sar_all_zero(ready_dir, tmp_path):
    src = prep_files(ready_dir)[0]
    dst = tmp_path / src.name
    rewrite(src, dst, zero=("nersc_sar_primary",))
    with pytest.raises(SceneError, match="all zero or NaN.*leave it out"):
        read_scene(dst)


def test_bad_names_and_references(test_dir, tmp_path):
    with pytest.raises(SceneError, match="does not follow the AI4Arctic naming"):
        parse_scene_name(tmp_path / "scene.nc")
    reference = sorted(test_dir.glob("*_reference.nc"))[0]
    with pytest.raises(SceneError, match="is a test reference"):
        read_scene(reference)
    with pytest.raises(SceneError, match="20180101T000000_cis_prep.nc: does not exist"):
        read_scene(tmp_path / "20180101T000000_cis_prep.nc")


def test_missing_path_is_reported_as_missing(tmp_path):
    missing = tmp_path / "missing" / "path"
    with pytest.raises(SceneError, match=rf"path: does not exist: {missing}\."):
        read_scene(missing)  # not "does not follow the AI4Arctic naming"


def test_impossible_date_in_a_name():
    with pytest.raises(
        SceneError,
        match=r"20201399T999999_dmi_prep.nc: the start time 20201399T999999 in the "
        r"file name is not a real date and time.*rename",
    ):
        parse_scene_name("20201399T999999_dmi_prep.nc")
    assert parse_scene_name("20200229T235959_cis_prep.nc").time.day == 29


def test_chart_classes_outside_the_tables(ready_dir, test_dir, tmp_path):
    src = prep_files(ready_dir)[0]
    with netCDF4.Dataset(src) as ds:
        sod, floe = ds["SOD"][:].astype(np.int16), ds["FLOE"][:].astype(np.int16)
    sod[0, 0], floe[0, :2] = 9, -1  # -1 would read as 255 (masked) once cast to uint8
    bad = tmp_path / src.name
    rewrite(src, bad, replace={"SOD": sod, "FLOE": floe})
    with pytest.raises(
        SceneError,
        match=r"chart values outside the classes: SOD 9 \(valid 0-5\), "
        r"FLOE -1 \(valid 0-6\); 255 = masked",
    ):
        read_scene(bad)
    test_file = prep_files(test_dir)[0]
    reference = test_dir / test_file.name.replace("_prep.nc", "_prep_reference.nc")
    with netCDF4.Dataset(reference) as ds:
        sic = ds["SIC"][:]
    sic[5, 5:8] = [11, 42, 11]
    bad_reference = tmp_path / reference.name
    rewrite(reference, bad_reference, replace={"SIC": sic})
    with pytest.raises(
        SceneError,
        match=r"_prep_reference.nc: chart values outside the classes: SIC 11, 42 "
        r"\(valid 0-10\)",
    ):
        read_scene(test_file, reference=bad_reference)


def test_reference_of_other_scene(test_dir, tmp_path):
    src = prep_files(test_dir)[0]
    wrong = tmp_path / "ref.nc"
    with netCDF4.Dataset(wrong, "w") as ds:
        ds.createDimension("sar_lines", 10)
        ds.createDimension("sar_samples", 10)
        for chart in CHART_NAMES:
            ds.createVariable(chart, "u1", ("sar_lines", "sar_samples"))[:] = 0
    with pytest.raises(SceneError, match="belongs to another scene"):
        read_scene(src, reference=wrong)
