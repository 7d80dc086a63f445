"""Stratified scores (each stratum is the official score of its scenes alone) and scene selection."""

import csv
from datetime import datetime

import numpy as np
import pytest
from sklearn.metrics import f1_score, r2_score

from seaice_mlflow.core.errors import ParameterError, SeaIceError
from seaice_mlflow.core.metrics import ScoreBoard
from seaice_mlflow.tasks.autoice.charts import AUTOICE, CHART_NAMES, CHARTS
from seaice_mlflow.tasks.autoice.files.metadata import (
    SceneMetadata,
    calendar_season,
    read_metadata_files,
)
from seaice_mlflow.tasks.autoice.files.reader import read_scene
from seaice_mlflow.tasks.autoice.plots import save, strata_scores
from seaice_mlflow.tasks.autoice.strata import (
    metric_label,
    parse_strata_keys,
    select_scenes,
    strata_metrics,
    stratified_scores,
    write_strata_table,
)
from tests.conftest import prep_files

#: scene id -> (month, service, region, season)
SCENES = {
    "20180115T100000_dmi": (1, "dmi", "North", "freeze"),
    "20180420T100000_dmi": (4, "dmi", "CapeFarewell", "freeze"),
    "20180710T100000_dmi": (7, "dmi", "North", "melt"),
    "20180805T100000_cis": (8, "cis", "FOXE", "melt"),
    "20181201T100000_cis": (12, "cis", "FOXE", "freeze"),
    "20190915T100000_cis": (9, "cis", "unknown", "melt"),
}


def metadata_of(scene_id, month, service, region, season, source="approximation") -> SceneMetadata:
    date = datetime.strptime(scene_id[:15], "%Y%m%dT%H%M%S")
    assert date.month == month
    return SceneMetadata(scene_id, date, service, region, calendar_season(month), season, source, 70.0, None)


@pytest.fixture
def metadata() -> dict[str, SceneMetadata]:
    return {s: metadata_of(s, *values) for s, values in SCENES.items()}


@pytest.fixture
def scenes() -> dict[str, tuple[dict, dict]]:
    """Reference and predicted charts per scene, of different sizes and quality, with masked pixels."""
    rng = np.random.default_rng(4)
    out = {}
    for i, scene_id in enumerate(SCENES):
        shape = (20 + 5 * i, 30)
        reference, prediction = {}, {}
        for chart in CHART_NAMES:
            n = CHARTS[chart].n_classes
            ref = rng.integers(0, n, shape).astype(np.uint8)
            wrong = rng.random(shape) < 0.1 + 0.1 * i
            pred = np.where(wrong, rng.integers(0, n, shape), ref).astype(np.uint8)
            ref[rng.random(shape) < 0.2] = 255
            reference[chart], prediction[chart] = ref, pred
        out[scene_id] = (reference, prediction)
    return out


def board_of(scenes, ids) -> ScoreBoard:
    board = ScoreBoard(AUTOICE)
    for scene_id in ids:
        board.add(scene_id, *scenes[scene_id])
    return board


def official_score(scenes, ids) -> dict[str, float]:
    """The starter pack's computation on the pooled pixels of ``ids`` (spec section 5)."""
    scores = {}
    for chart in CHART_NAMES:
        ref = np.concatenate([scenes[s][0][chart].ravel() for s in ids])
        pred = np.concatenate([scenes[s][1][chart].ravel() for s in ids])
        valid = ref != 255
        metric = r2_score if chart == "SIC" else lambda t, p: f1_score(t, p, average="weighted")
        scores[chart] = float(np.round(metric(ref[valid], pred[valid]) * 100, 3))
    scores["combined"] = float(np.round((2 * scores["SIC"] + 2 * scores["SOD"] + scores["FLOE"]) / 5, 3))
    return scores


def test_each_stratum_is_the_official_score_of_its_scenes_alone(scenes, metadata):
    board = board_of(scenes, SCENES)
    strata = stratified_scores(board, metadata, ["season", "calendar_season", "region", "service"])
    expected = {
        ("season", "freeze"): ["20180115T100000_dmi", "20180420T100000_dmi", "20181201T100000_cis"],
        ("season", "melt"): ["20180710T100000_dmi", "20180805T100000_cis", "20190915T100000_cis"],
        ("calendar_season", "DJF"): ["20180115T100000_dmi", "20181201T100000_cis"],
        ("calendar_season", "MAM"): ["20180420T100000_dmi"],
        ("calendar_season", "JJA"): ["20180710T100000_dmi", "20180805T100000_cis"],
        ("calendar_season", "SON"): ["20190915T100000_cis"],
        ("region", "CapeFarewell"): ["20180420T100000_dmi"],
        ("region", "North"): ["20180115T100000_dmi", "20180710T100000_dmi"],
        ("region", "FOXE"): ["20180805T100000_cis", "20181201T100000_cis"],
        ("region", "unknown"): ["20190915T100000_cis"],
        ("service", "dmi"): ["20180115T100000_dmi", "20180420T100000_dmi", "20180710T100000_dmi"],
        ("service", "cis"): ["20180805T100000_cis", "20181201T100000_cis", "20190915T100000_cis"],
    }
    assert [(s.key, s.value) for s in strata] == list(expected)  # strata in their listing order
    for stratum in strata:
        ids = expected[(stratum.key, stratum.value)]
        assert list(stratum.scenes) == ids
        alone = board_of(scenes, ids).pooled()
        assert stratum.scores.as_dict() == alone.as_dict()
        official = official_score(scenes, ids)
        assert stratum.scores.combined == official["combined"]
        assert all(stratum.scores.charts[c] == pytest.approx(official[c], abs=1e-9) for c in CHART_NAMES)
    assert len({s.scores.combined for s in strata if s.key == "season"}) == 2  # the strata differ


def test_strata_metric_names(scenes, metadata):
    metadata["20190915T100000_cis"] = metadata_of("20190915T100000_cis", 9, "cis", "Baie d'Ungava/N", "melt")
    strata = stratified_scores(board_of(scenes, SCENES), metadata, parse_strata_keys("season, region,service"))
    metrics = strata_metrics(strata)
    for name in (
        "test_melt_combined",
        "test_freeze_SOD_f1",
        "test_freeze_SIC_r2",
        "test_region_North_combined",
        "test_region_FOXE_FLOE_f1",
        "test_region_Baie_d_Ungava_N_combined",  # sanitised for MLflow
        "test_service_dmi_combined",
    ):
        assert name in metrics
    melt = next(s for s in strata if s.value == "melt")
    assert metrics["test_melt_combined"] == melt.scores.combined
    assert strata_metrics(strata, "val")["val_melt_combined"] == melt.scores.combined
    assert metric_label("calendar_season", "DJF") == "DJF" and metric_label("service", "cis") == "service_cis"


def test_strata_need_every_scored_scene(scenes, metadata):
    del metadata["20180115T100000_dmi"]
    with pytest.raises(SeaIceError, match="no metadata for 1 scored scene.*20180115T100000_dmi"):
        stratified_scores(board_of(scenes, SCENES), metadata, ["season"])


def test_strata_keys_are_checked():
    assert parse_strata_keys("season,region,season") == ("season", "region")
    assert parse_strata_keys(["service"]) == ("service",) and parse_strata_keys("") == ()
    with pytest.raises(ParameterError, match="option --by: 'location' is not one of season, calendar_season"):
        parse_strata_keys("season,location")


def test_strata_table_and_plot(scenes, metadata, tmp_path):
    metadata["20180115T100000_dmi"] = metadata_of("20180115T100000_dmi", 1, "dmi", "North", "freeze", "table")
    strata = stratified_scores(board_of(scenes, SCENES), metadata, ["season", "region"])
    path = write_strata_table(strata, tmp_path / "strata.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["by"], r["stratum"]) for r in rows] == [(s.key, s.value) for s in strata]
    freeze = rows[0]
    assert freeze["label"] == "freeze" and freeze["n_scenes"] == "3"
    assert float(freeze["combined"]) == strata[0].scores.combined
    assert float(freeze["SOD_f1"]) == strata[0].scores.charts["SOD"]
    assert int(freeze["SIC_pixels"]) == strata[0].scores.pixels["SIC"]
    assert freeze["season_source"] == "approximation+table" and rows[1]["season_source"] == "approximation"
    assert freeze["scenes"].split() == list(strata[0].scenes)
    figure = strata_scores(strata)
    assert len(figure.axes) == 2 and "approximation" in figure.axes[0].get_title()
    assert save(figure, tmp_path / "strata.png").stat().st_size > 1000


def test_select_scenes(metadata):
    assert select_scenes(metadata, "") == list(SCENES)
    assert select_scenes(metadata, "season=freeze") == [
        "20180115T100000_dmi",
        "20180420T100000_dmi",
        "20181201T100000_cis",
    ]
    assert select_scenes(metadata, " season = Freeze , region = north|foxe ") == [
        "20180115T100000_dmi",
        "20181201T100000_cis",
    ]
    assert select_scenes(metadata, "calendar_season=JJA|SON,service=cis") == [
        "20180805T100000_cis",
        "20190915T100000_cis",
    ]
    assert select_scenes(metadata, "region=unknown") == ["20190915T100000_cis"]
    assert select_scenes(metadata, "region=Qaanaaq|North") == ["20180115T100000_dmi", "20180710T100000_dmi"]


@pytest.mark.parametrize(
    "where,message",
    [
        ("season", "'season' is not key=value"),
        ("season=", "'season=' is not key=value"),
        ("month=7", "'month' is not one of season, calendar_season, region, service"),
        ("season=summer", "season='summer': not one of freeze, melt"),
        ("calendar_season=winter", "not one of DJF, MAM, JJA, SON"),
        ("service=nic", "service='nic': not one of dmi, cis"),
        ("region=Nort", "region='Nort': not one of CapeFarewell"),
        ("season=melt,season=freeze", "season is given twice; list its alternatives as season=A|B"),
        (
            "season=melt,region=CapeFarewell",
            "no scene meets 'season=melt,region=CapeFarewell' (the 6 scenes have season: freeze 3, melt 3; "
            "region: CapeFarewell 1, North 2, FOXE 2, unknown 1)",
        ),
    ],
)
def test_bad_scene_selections(metadata, where, message):
    with pytest.raises(ParameterError, match="option --scenes-where") as err:
        select_scenes(metadata, where)
    assert message in str(err.value)


def test_a_region_only_the_scenes_have_can_be_selected(metadata):
    metadata["20190915T100000_cis"] = metadata_of("20190915T100000_cis", 9, "cis", "Disko", "melt")
    assert select_scenes(metadata, "region=disko") == ["20190915T100000_cis"]


def test_strata_of_synthetic_scenes(ready_dir):
    """The metadata read from synthetic files feed the strata (one scene per stratum here)."""
    files = prep_files(ready_dir)
    metadata = read_metadata_files(files)
    board = ScoreBoard(AUTOICE)
    for path in files:
        scene = read_scene(path)
        board.add(scene.scene_id, scene.charts, scene.charts)
    strata = stratified_scores(board, metadata, ["season", "region", "service"])
    assert {s.key for s in strata} == {"season", "region", "service"}
    assert all(s.scores.combined == 100.0 for s in strata)
