"""Scene metadata from the files themselves: regions, seasons, the user's melt/freeze tables."""

import json
import shutil
from datetime import datetime

import netCDF4
import numpy as np
import pytest

from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.tasks.autoice.files.metadata import (
    SceneMetadata,
    SeasonTable,
    approximate_season,
    calendar_season,
    melt_window,
    read_metadata,
    read_metadata_files,
    read_season_table,
    scene_metadata,
)
from seaice_mlflow.tasks.autoice.files.naming import (
    CIS_REGIONS,
    DMI_REGIONS,
    chart_region,
    find_scene_files,
    parse_scene_name,
    prep_name,
    reference_name,
)
from seaice_mlflow.tasks.autoice.files.reader import read_scene
from seaice_mlflow.tasks.autoice.synthetic import SyntheticScene
from seaice_mlflow.tasks.autoice.synthetic.generate import scene_indices
from tests.conftest import SEED, SIZE, prep_files

PRODUCT = "S1A_EW_GRDM_1SDH_20180707T122209_20180707T122309_022681_0275BB_4C1F"
DMI_RAW = f"{PRODUCT}_icechart_dmi_201807071200_NorthAndCentralEast_RIC.nc"
CIS_TEST = f"{PRODUCT}_icechart_cis_SGRDIFOXE_20180707T1214Z_pl_a_testdata.nc"


@pytest.mark.parametrize(
    "original_id,region",
    [
        (DMI_RAW, "NorthAndCentralEast"),
        (DMI_RAW.replace("NorthAndCentralEast", "CapeFarewell"), "CapeFarewell"),
        (CIS_TEST, "FOXE"),  # the spec's raw test example, with its _testdata suffix
        (f"{PRODUCT}_icechart_cis_SGRDIEA_20180707T1214Z_pl_a.nc", "EA"),
        ("dmi_201807071200_Qaanaaq_RIC", "Qaanaaq"),  # the provider part alone (icechart_id)
        (f"{PRODUCT}_icechart_dmi_201807071200_Disko_RIC.nc", "Disko"),  # well formed, not in the spec's list
        (f"{PRODUCT}_icechart_dmi_2018070712_North_RIC.nc", "unknown"),  # chart time too short
        (f"{PRODUCT}_icechart_cis_SGRDI_20180707T1214Z_pl_a.nc", "unknown"),
        ("", "unknown"),
        ("something else entirely", "unknown"),
    ],
)
def test_chart_region_from_the_raw_name(original_id, region):
    assert chart_region(original_id) == region


def test_calendar_seasons():
    assert [calendar_season(m) for m in range(1, 13)] == ["DJF"] * 2 + ["MAM"] * 3 + ["JJA"] * 3 + ["SON"] * 3 + ["DJF"]


def test_the_melt_freeze_approximation():
    assert melt_window(70.0) == (135.0, 320.0)
    assert melt_window(None) == melt_window(70.0)
    assert melt_window(60.0) == (125.0, 350.0) and melt_window(80.0) == (145.0, 290.0)
    assert melt_window(30.0) == melt_window(45.0) and melt_window(89.0) == melt_window(85.0)
    for latitude in (50.0, 65.0, 82.0, None):
        assert approximate_season(datetime(2019, 7, 15), latitude) == "melt"
        assert approximate_season(datetime(2019, 1, 15), latitude) == "freeze"
    # day 135 of a common year is 15 May: melt starts that day at 70 N
    assert approximate_season(datetime(2019, 5, 14, 23), 70.0) == "freeze"
    assert approximate_season(datetime(2019, 5, 15), 70.0) == "melt"
    # late October: freeze-up has come in the far north, not in the south
    assert approximate_season(datetime(2019, 10, 25), 80.0) == "freeze"
    assert approximate_season(datetime(2019, 10, 25), 60.0) == "melt"


def test_metadata_of_ready_test_reference_and_raw_files(ready_dir, raw_dir, test_dir, raw_test_dir):
    for path in prep_files(ready_dir):
        meta = read_metadata(path)
        with netCDF4.Dataset(path) as ds:
            assert meta.original_id == ds.getncattr("original_id") and meta.service == ds.getncattr("ice_service")
            assert meta.latitude == pytest.approx(float(np.mean(ds["sar_grid2d_latitude"][:])))
        assert meta.scene_id == path.name[:19] and meta.date == parse_scene_name(path).time
        assert meta.region == chart_region(meta.original_id) and meta.region in DMI_REGIONS + CIS_REGIONS
        assert meta.region in (DMI_REGIONS if meta.service == "dmi" else CIS_REGIONS)
        assert meta.calendar_season == calendar_season(meta.date.month) and meta.season_source == "approximation"
        assert scene_metadata(read_scene(path)) == meta  # the same from a scene already read
    raw = read_metadata_files(find_scene_files(raw_dir))
    assert raw == read_metadata_files(prep_files(ready_dir))  # the same scenes, raw and ready
    for path in prep_files(test_dir):  # a reference takes the metadata of its test file
        assert read_metadata(path.parent / reference_name(path.name[:19])) == read_metadata(path)
    [raw_test] = find_scene_files(raw_test_dir)
    meta = read_metadata(raw_test)
    assert meta.original_id == raw_test.name and meta.region == chart_region(raw_test.name) != "unknown"
    assert scene_metadata(read_scene(raw_test)) == meta


def test_metadata_is_the_generators(ready_dir):
    """The synthetic scenes' melt/freeze is the approximation, applied by the generator."""
    for index in scene_indices(SEED, 0, 2):
        scene = SyntheticScene(SEED, index, SIZE)
        meta = read_metadata(ready_dir / prep_name(scene.identity.key))
        assert meta.season == scene.season and meta.original_id == scene.identity.raw_name


def test_odd_attributes_give_unknown_not_errors(ready_dir, tmp_path):
    source = prep_files(ready_dir)[0]
    odd = tmp_path / source.name
    shutil.copy(source, odd)
    with netCDF4.Dataset(odd, "a") as ds:
        ds.setncattr("original_id", "not a raw name")
        ds.setncattr("ice_service", "NIC")
    meta = read_metadata(odd)
    assert meta.region == "unknown" and meta.service == source.name[16:19]  # the name's provider
    with netCDF4.Dataset(odd, "a") as ds:
        ds.delncattr("original_id")
        ds.delncattr("ice_service")
        ds.setncattr("original_id", np.int32(3))
    meta = read_metadata(odd)
    assert meta.region == "unknown" and meta.original_id is None and meta.service == source.name[16:19]
    alone = tmp_path / "alone" / reference_name(source.name[:19])  # a reference without its test file
    alone.parent.mkdir()
    shutil.copy(source, alone)
    meta = read_metadata(alone)
    assert meta.latitude is None and meta.region == "unknown"
    assert meta.season == approximate_season(meta.date, None) and meta.season_source == "approximation"


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_season_table(ready_dir, tmp_path):
    first, second = prep_files(ready_dir)
    table = write(
        tmp_path / "seasons.csv",
        f"\ufeffScene, Season ,note\n{first.name[:19]},Melt,x\n\n/data/{second.name},freeze,\n{DMI_RAW},melt,\n",
    )
    seasons = read_season_table(table)
    assert seasons.sources == (table,)
    assert dict(seasons.seasons) == {
        first.name[:19]: "melt",
        second.name[:19]: "freeze",
        "20180707T122209_dmi": "melt",
    }
    meta = read_metadata_files([first, second], seasons)
    assert meta[first.name[:19]].season == "melt" and meta[second.name[:19]].season == "freeze"
    assert {m.season_source for m in meta.values()} == {"table"}
    partial = SeasonTable({first.name[:19]: "freeze"})
    assert read_metadata(second, partial).season_source == "approximation"  # not listed: the rule
    kept = SceneMetadata.from_dict(json.loads(json.dumps(read_metadata(first).as_dict())))  # e.g. in a store
    assert kept == read_metadata(first) and kept.with_seasons(seasons) == meta[first.name[:19]]
    assert kept.with_seasons(seasons).with_seasons(None) == kept


def test_icebench_json_lists(tmp_path):
    lists = tmp_path / "files_json"
    lists.mkdir()
    write(lists / "Melt_cat1_train_files.json", json.dumps([DMI_RAW]))
    write(lists / "Freeze_cat3_train_files.json", json.dumps([CIS_TEST, "20190101T000000_cis_prep.nc"]))
    write(lists / "Melt_all_train_files.json", json.dumps([DMI_RAW]))  # listed again, same season
    write(lists / "TwoSeasons_all_train_files.json", json.dumps([DMI_RAW, CIS_TEST]))  # no season: skipped
    seasons = read_season_table(lists)
    assert dict(seasons.seasons) == {
        "20180707T122209_dmi": "melt",
        "20180707T122209_cis": "freeze",
        "20190101T000000_cis": "freeze",
    }
    assert len(seasons.sources) == 3
    assert read_season_table(lists / "Freeze_cat3_train_files.json").season_of("20180707T122209_dmi") is None


@pytest.mark.parametrize(
    "name,text,message",
    [
        ("seasons.csv", "file,label\nx,melt\n", "seasons.csv: the first line must name the columns scene,season"),
        ("seasons.csv", "", "found nothing"),
        ("seasons.csv", "scene,season\n20190101T000000_dmi,summer\n", "seasons.csv line 2: season 'summer'"),
        ("seasons.csv", "scene,season\n20190101T000000_dmi,melt\nbad.nc,freeze\n", "seasons.csv line 3: 'bad.nc'"),
        ("seasons.csv", "scene,season\n20190101T000000_dmi\n", "seasons.csv line 2: expected the columns"),
        (
            "seasons.csv",
            "scene,season\n20190101T000000_dmi,melt\n20190101T000000_dmi_prep.nc,freeze\n",
            "seasons.csv line 3: scene 20190101T000000_dmi is freeze here but melt in seasons.csv",
        ),
        ("Melt_x_train_files.json", "{not json", "Melt_x_train_files.json is not readable JSON"),
        ("Melt_x_train_files.json", '{"files": []}', "must hold a JSON list of file names"),
        ("Freeze_x_train_files.json", '["nonsense"]', "Freeze_x_train_files.json entry 1: 'nonsense'"),
        ("TwoSeasons_x_train_files.json", "[]", "neither a CSV file"),
        ("seasons.txt", "scene,season\n", "neither a CSV file"),
    ],
)
def test_malformed_season_tables_name_the_file(tmp_path, name, text, message):
    with pytest.raises(ParameterError, match="option --season-table") as err:
        read_season_table(write(tmp_path / name, text))
    assert message in str(err.value)


def test_season_tables_that_are_not_there(tmp_path):
    with pytest.raises(ParameterError, match="does not exist"):
        read_season_table(tmp_path / "none.csv")
    with pytest.raises(ParameterError, match="holds no Melt_"):
        read_season_table(tmp_path)
    write(tmp_path / "Melt_a_train_files.json", json.dumps([DMI_RAW]))
    write(tmp_path / "Freeze_b_train_files.json", json.dumps([DMI_RAW.replace(".nc", "_testdata.nc")]))
    with pytest.raises(ParameterError, match="scene 20180707T122209_dmi is melt here but freeze in Freeze_b"):
        read_season_table(tmp_path)
