"""Scenes read window by window: the same inputs, masks and charts as the in-memory reader."""

from __future__ import annotations

import numpy as np
import pytest

from seaice_mlflow.core.errors import SceneError
from seaice_mlflow.core.tiling import Window
from seaice_mlflow.tasks.autoice.files.reader import read_scene
from seaice_mlflow.tasks.autoice.files.variables import SAR_VARIABLES, parse_variables
from seaice_mlflow.tasks.autoice.files.windowed import SceneFile, open_scene
from tests.conftest import prep_files

VARIABLES = parse_variables("all+encodings")


@pytest.mark.parametrize("folder", ["ready_dir", "test_dir"])
def test_windows_equal_the_in_memory_scene(request, folder):
    for path in prep_files(request.getfixturevalue(folder)):
        whole = read_scene(path)
        with open_scene(path) as scene:
            assert isinstance(scene, SceneFile)
            assert (scene.scene_id, scene.kind, scene.shape) == (whole.scene_id, whole.kind, whole.shape)
            assert scene.has_charts and all(np.array_equal(scene.charts[c], whole.charts[c]) for c in whole.charts)
            np.testing.assert_array_equal(scene.sar_valid, whole.sar_valid)
            for window in (Window(0, 0, *whole.shape), Window(7, 13, 40, 51), Window(90, 120, 6, 8)):
                np.testing.assert_array_equal(scene.inputs(VARIABLES, window), whole.inputs(VARIABLES, window))
            assert list(scene.sar) == list(SAR_VARIABLES)
            np.testing.assert_array_equal(scene.sar["sar_incidenceangle"], whole.sar["sar_incidenceangle"])
            assert not isinstance(scene.sar, dict)  # nothing of the 80 m grid was loaded whole


def test_raw_files_are_read_into_memory(raw_dir):
    path = sorted(raw_dir.glob("*.nc"))[0]
    with open_scene(path) as scene:
        assert not isinstance(scene, SceneFile) and scene.kind == "raw" and scene.has_charts


def test_bad_files_fail_as_with_the_reader(tmp_path):
    path = tmp_path / "20200101T000000_dmi_prep.nc"
    path.write_bytes(b"not netcdf")
    with pytest.raises(SceneError, match="cannot be opened as netCDF"):
        with open_scene(path):
            pass
