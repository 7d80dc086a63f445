"""Synthetic scenes: real layouts, raw -> ready equivalence, determinism, physical plausibility."""

import numpy as np
import pytest
import xarray as xr

from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES, IGNORE_INDEX
from seaice_mlflow.tasks.autoice.files.eggcode import decode_polygons, parse_polygon_codes
from seaice_mlflow.tasks.autoice.files.metadata import approximate_season, calendar_season
from seaice_mlflow.tasks.autoice.files.naming import CIS_REGIONS, DMI_REGIONS, chart_region, find_scene_files
from seaice_mlflow.tasks.autoice.files.raw import block_max, block_mean, reduce_strip
from seaice_mlflow.tasks.autoice.files.reader import read_scene
from seaice_mlflow.tasks.autoice.files.variables import GLOBAL_MEAN_STD, SCENE_VARIABLES
from seaice_mlflow.tasks.autoice.synthetic import SyntheticScene, synthesize
from seaice_mlflow.tasks.autoice.synthetic.generate import accumulate_cells, scene_rngs
from seaice_mlflow.tasks.autoice.synthetic.radar import STAGE_SIGNATURE, WET_CONTRAST, RadarModel, wet_signature
from seaice_mlflow.tasks.autoice.synthetic.radiometer import brightness_temperatures
from seaice_mlflow.tasks.autoice.synthetic.writer import polygon_code_rows
from tests.conftest import SEED, SIZE, prep_files


def test_ready_layout_matches_spec(ready_dir):
    with xr.open_dataset(prep_files(ready_dir)[0]) as ds:
        assert len(ds.data_vars) == 29 and not ds.coords
        assert ds["SIC"].dtype == np.uint8 and ds["SIC"].dims == ("sar_lines", "sar_samples")
        assert ds["SIC"].attrs == {"polygon": "Sea Ice Concentration [%]", "chart_fill_value": 255}
        assert ds["sar_grid2d_latitude"].dims == ("sar_sample_2dgrid_points", "sar_line_2dgrid_points")
        assert ds["btemp_6_9h"].dtype == np.float32 and ds["btemp_6_9h"].dims == ("2km_grid_lines", "2km_grid_samples")
        hh = ds["nersc_sar_primary"].attrs
        assert hh["polarisation"] == "HH" and hh["variable_fill_value"] == 0 and hh["min"] < hh["max"]
        assert len(hh["upstream_id"]) == 67
        description = "Brightness temperature in K at 6.9GHz. Polarization: horizontal."
        assert ds["btemp_6_9h"].attrs["description"] == description
        assert ds.attrs["ice_service"] in ("dmi", "cis") and ds.attrs["pixel_spacing"] == 80 and ds.attrs["flip"] == 0
        assert ds.attrs["scene_id"] == prep_files(ready_dir)[0].name
        assert ds.attrs["original_id"].startswith(hh["upstream_id"] + "_icechart_")


def test_test_split_layout(test_dir):
    path = prep_files(test_dir)[0]
    with xr.open_dataset(path) as ds:
        assert len(ds.data_vars) == 26 and not set(CHART_NAMES) & set(ds.data_vars)
    with xr.open_dataset(str(path).replace("_prep.nc", "_prep_reference.nc")) as ref:
        assert set(ref.data_vars) == set(CHART_NAMES)


def test_raw_layout_matches_spec(raw_dir, raw_test_dir):
    path = find_scene_files(raw_dir)[0]
    with xr.open_dataset(path) as ds:
        assert len(ds.data_vars) == 32
        assert ds["polygon_codes"].values[0] == "poly_id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE"
        assert ds["btemp_6_9h"].dtype == np.float64 and ds["t2m"].dtype == np.float64
        assert ds.sizes["sar_lines"] == 2 * SIZE[0] and ds.sizes["sar_grid_points"] == 441
        assert np.isnan(ds["nersc_sar_primary"].values).any()  # outside the swath
    [test_path] = find_scene_files(raw_test_dir)
    assert test_path.name.endswith("_testdata.nc")
    with xr.open_dataset(test_path) as ds:
        assert len(ds.data_vars) == 31 and "polygon_icechart" not in ds


def test_raw_converts_to_the_same_ready_scene(ready_dir, raw_dir):
    ready = {p.name[:19]: p for p in prep_files(ready_dir)}
    for raw_path in find_scene_files(raw_dir):
        from_raw = read_scene(raw_path)
        from_ready = read_scene(ready[from_raw.scene_id])
        for name in from_ready.sar:
            np.testing.assert_array_equal(from_raw.sar[name], from_ready.sar[name], err_msg=name)
        for name in from_ready.coarse:
            np.testing.assert_array_equal(from_raw.coarse[name], from_ready.coarse[name], err_msg=name)
        for chart in CHART_NAMES:
            np.testing.assert_array_equal(from_raw.charts[chart], from_ready.charts[chart], err_msg=chart)
        np.testing.assert_array_equal(from_raw.latitude, from_ready.latitude)


def test_every_generated_egg_code_means_its_chart():
    """The generator's intended classes equal the starter-pack decoding of its egg codes."""
    for index in range(12):
        scene = SyntheticScene(3, index, (700, 700))
        rows = polygon_code_rows(np.random.default_rng(index), scene.chart.polygons)
        decoded = decode_polygons(parse_polygon_codes(rows))
        for chart in CHART_NAMES:
            np.testing.assert_array_equal(decoded[chart], scene.classes[chart], err_msg=f"{index} {chart}")


def test_deterministic_for_a_seed(tmp_path):
    a = synthesize(tmp_path / "a", n_scenes=2, size=(64, 80), seed=5)
    b = synthesize(tmp_path / "b", n_scenes=1, size=(64, 80), seed=5)
    c = synthesize(tmp_path / "c", n_scenes=1, size=(64, 80), seed=6)
    assert a[0].name == b[0].name != c[0].name
    first, again = read_scene(a[0]), read_scene(b[0])
    assert np.array_equal(first.inputs(SCENE_VARIABLES), again.inputs(SCENE_VARIABLES))
    assert all(np.array_equal(first.charts[k], again.charts[k]) for k in CHART_NAMES)


def test_worker_processes_write_the_same_scenes(tmp_path):
    serial = synthesize(tmp_path / "serial", n_scenes=3, size=(64, 80), split="test", seed=5)
    reported = []
    parallel = synthesize(
        tmp_path / "parallel", n_scenes=3, size=(64, 80), split="test", seed=5, workers=2, on_scene=reported.append
    )
    assert [p.name for p in parallel] == [p.name for p in serial]  # scene by scene, in index order
    assert [p for paths in reported for p in paths] == parallel
    for a, b in zip(find_scene_files(tmp_path / "serial"), find_scene_files(tmp_path / "parallel")):
        first, again = read_scene(a), read_scene(b)
        assert np.array_equal(first.inputs(SCENE_VARIABLES), again.inputs(SCENE_VARIABLES), equal_nan=True)
        assert all(np.array_equal(first.charts[k], again.charts[k]) for k in CHART_NAMES)


def test_scene_physics(ready_dir):
    for path in prep_files(ready_dir):
        scene = read_scene(path)
        valid = scene.sar_valid
        for chart in CHART_NAMES:  # no chart where there is no SAR (off swath, land)
            assert np.all(scene.charts[chart][~valid] == IGNORE_INDEX)
        sic, sod, floe = (scene.charts[c] for c in CHART_NAMES)
        both = (sic != 255) & (sod != 255) & (floe != 255)
        assert np.array_equal(sic[both] == 0, sod[both] == 0) and np.array_equal(sic[both] == 0, floe[both] == 0)
        hh = scene.sar["nersc_sar_primary"][valid]
        assert -4 < np.quantile(hh, 0.01) and np.quantile(hh, 0.99) < 4
        zones = scene.sar["distance_map"] * GLOBAL_MEAN_STD["distance_map"][1] + GLOBAL_MEAN_STD["distance_map"][0]
        assert np.allclose(zones, np.round(zones), atol=1e-3) and zones.min() >= 0 and zones.max() <= 41
        for name, values in scene.coarse.items():
            assert np.all(np.abs(values) < 7), name


def test_incidence_angle_ramps_across_the_swath(ready_dir):
    scene = read_scene(prep_files(ready_dir)[0])
    mean, std = GLOBAL_MEAN_STD["sar_incidenceangle"]
    ia = scene.sar["sar_incidenceangle"] * std + mean
    ia = ia[scene.sar_valid]
    assert 17 < ia.min() < 30 and 35 < ia.max() < 48


def test_amsr2_follows_sea_ice():
    """18.7 GHz H is cold over open water and warm over ice: it follows the 2 km ice fraction."""
    for index in range(20):
        scene = SyntheticScene(SEED, index, (600, 650))
        ice = np.zeros(scene.coarse_shape)
        for strip in scene.strips():
            accumulate_cells(ice, strip.row, strip.ice)
        ice /= 25 * 25
        tb = scene.coarse_variables(ice, np.zeros_like(ice))["btemp_18_7h"]
        if not scene.land.any() and ice.std() > 0.1:
            assert np.corrcoef(ice.ravel(), tb.ravel())[0, 1] > 0.8
            break
    else:
        pytest.fail("no land-free scene with sea ice among 20")


def test_land_spills_over_onto_coastal_water():
    land = np.zeros((20, 30))
    land[:, :5] = 1
    zeros = np.zeros_like(land)
    era5 = {"tcwv": np.full_like(land, 5.0), "tclw": zeros, "skt": np.full_like(land, 258.0)}
    tb = brightness_temperatures(np.random.default_rng(0), zeros, zeros, land, era5)
    assert tb["btemp_6_9h"][:, 7].mean() > tb["btemp_6_9h"][:, 28].mean() + 30  # wide 6.9 GHz footprint
    assert tb["btemp_89_0h"][:, 12].mean() < tb["btemp_89_0h"][:, 28].mean() + 3  # narrow 89 GHz one


def test_class_frequencies_roughly_real():
    """Over many polygons the water share and the main ice classes are near the real ones."""
    water = total = 0
    sod_counts = np.zeros(6)
    for index in range(30):
        scene = SyntheticScene(7, index, (400, 400))
        area = np.bincount(scene.chart.index[scene.chart.index >= 0], minlength=len(scene.chart.polygons))
        sic, sod = scene.classes["SIC"], scene.classes["SOD"]
        water += area[sic == 0].sum()
        total += area[sic != 255].sum()
        for k in range(6):
            sod_counts[k] += area[sod == k].sum()
    assert 0.4 < water / total < 0.75  # real: 57 %
    ice_sod = sod_counts[1:] / sod_counts[1:].sum()
    assert ice_sod[3] + ice_sod[4] > 0.5  # thick FYI and old ice dominate the ice, as in the real data


def test_scenes_carry_realistic_metadata():
    """Chart regions of their service, dates across the year, melt and freeze scenes."""
    scenes = [SyntheticScene(7, index, (64, 64)) for index in range(40)]
    for scene in scenes:
        region = chart_region(scene.identity.raw_name)
        assert region in (DMI_REGIONS if scene.identity.provider == "dmi" else CIS_REGIONS)
        assert scene.season == approximate_season(scene.identity.time, float(np.mean(scene.tie.latitude)))
    assert {calendar_season(s.identity.time.month) for s in scenes} == {"DJF", "MAM", "JJA", "SON"}
    assert {s.season for s in scenes} == {"melt", "freeze"}
    assert len({chart_region(s.identity.raw_name) for s in scenes}) >= 10


def test_wet_ice_in_the_melt_season():
    """Wet snow leaves a third of the contrast between ice stages and darkens the ice; a
    melt-season scene has the ice (so the charts and radiometer) of the same scene dry."""
    for a in range(1, 6):
        for b in range(1, 6):
            wet = wet_signature(STAGE_SIGNATURE[a])[0] - wet_signature(STAGE_SIGNATURE[b])[0]
            assert wet == pytest.approx(WET_CONTRAST * (STAGE_SIGNATURE[a][0] - STAGE_SIGNATURE[b][0]))
    index = next(i for i in range(40) if SyntheticScene(3, i, (300, 300)).season == "melt")
    scene = SyntheticScene(3, index, (300, 300))
    assert scene.radar.ponds is not None
    parts = (scene.shape, scene.chart, scene.land, scene.swath, scene.tie, scene.wind, scene.wind_mean, (3, index))
    dry = RadarModel(scene_rngs(3, index)[5], *parts, melt=False)
    phi, stage = scene.radar.ice_cover(np.arange(scene.shape[0]))
    wet_hh, _, wet_phi, _ = scene.radar.strip(0, scene.shape[0])
    dry_hh, _, dry_phi, _ = dry.strip(0, scene.shape[0])
    np.testing.assert_array_equal(wet_phi, dry_phi)  # the same ice, so the same charts and radiometer
    wet_hh, dry_hh = wet_hh[::2, ::2], dry_hh[::2, ::2]
    ice = (phi > 0.95) & np.isfinite(wet_hh)
    stages = [k for k in range(1, 6) if (ice & (stage == k)).sum() > 200]
    assert len(stages) >= 3
    wet_means = [np.mean(wet_hh[ice & (stage == k)]) for k in stages]
    dry_means = [np.mean(dry_hh[ice & (stage == k)]) for k in stages]
    assert np.ptp(wet_means) < 0.5 * np.ptp(dry_means)  # stages harder to tell apart
    assert np.mean(wet_hh[ice]) < np.mean(dry_hh[ice]) - 1  # wet ice darker


def test_block_reductions():
    values = np.array([[1, 3, np.nan, np.nan], [np.nan, 2, np.nan, np.nan]], dtype=np.float32)
    assert np.allclose(block_mean(values), [[2.0, np.nan]], equal_nan=True)
    classes = np.array([[3, -1, 255, 4], [-1, -1, 2, 2]], dtype=np.int16)
    assert block_max(classes).tolist() == [[3, 255]]  # invalid pixels skipped, 255 wins


def test_reduce_strip_aligns_masks():
    hh = np.full((2, 4), -15.0, dtype=np.float32)
    hh[:, 2:] = np.nan  # right block outside the swath
    charts = {c: np.full((2, 4), 3, np.int16) for c in CHART_NAMES}
    sar, out = reduce_strip(hh, hh.copy() - 8, np.full((2, 4), 30.0), np.full((2, 4), 5.0), charts)
    assert sar["nersc_sar_primary"][0, 1] == 0 and out["SIC"].tolist() == [[3, 255]]
    assert sar["sar_incidenceangle"][0, 1] == 0 and sar["distance_map"][0, 1] != 0


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"size": (20, 300)}, "too small"),
        ({"split": "val"}, "split"),
        ({"fmt": "zarr"}, "format"),
        ({"n_scenes": 0}, "at least 1"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_synth_parameters(tmp_path, kwargs, message):
    with pytest.raises(ParameterError, match=message):
        synthesize(tmp_path, **kwargs)
