"""`seaice study KIND`: settings of every kind, checks before any run, children as runs, re-runs."""

from __future__ import annotations

import csv
import io
import math
import re
import shutil

import mlflow
import pytest
from click.testing import CliRunner

from seaice_mlflow.cli import cli
from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.tasks.autoice.config import PROFILES, STUDY_KINDS, StudyDefaults
from seaice_mlflow.tasks.autoice.steps.main import PROFILES as PIPELINE_PROFILES
from seaice_mlflow.tasks.autoice.steps.study import plan_children, plan_study
from seaice_mlflow.tasks.autoice.strata import scene_share
from seaice_mlflow.tasks.autoice.study import (
    DEFAULT_VALUES,
    Setting,
    SettingResult,
    batch_for_patch,
    markdown_table,
    parse_seeds,
    parse_settings,
    split_values,
    table_rows,
)
from tests.conftest import prep_files

EXPERIMENT = "study-test"
#: The smoke profile on the tests' 96 x 128 px scenes (48 x 64 at its downsampling x2).
FIXED = "patch_size=32,val_tile=64"


@pytest.mark.parametrize("kind", STUDY_KINDS)
def test_every_kind_has_defaults_for_every_profile_but_region(kind):
    for profile in PROFILES:
        if kind == "region":
            with pytest.raises(ParameterError, match="option --values: a region study has no default values"):
                parse_settings(kind, "", profile)
            continue
        settings = parse_settings(kind, "", profile)
        assert len(settings) >= 2 and len({s.label for s in settings}) == len(settings)
        assert DEFAULT_VALUES[kind][profile].startswith(settings[0].label)
        assert len(plan_study(kind, StudyDefaults(profile=profile)).settings) == len(settings)  # each one trains


def test_what_each_kind_varies():
    melt, djf, everything = parse_settings("season", "melt,DJF,all", "demo")
    assert melt.train == {"scenes_where": "season=melt"} and djf.train == {"scenes_where": "calendar_season=DJF"}
    assert everything.train == {"scenes_where": ""}
    assert melt.by == djf.by == ("season", "calendar_season")  # every setting is scored by every stratum
    region = parse_settings("region", "North|NorthEast,all", "demo")[0]
    assert region.train == {"scenes_where": "region=North|NorthEast"} and region.by == ("region",)
    assert [s.downsample for s in parse_settings("downsample", "1,2,10", "demo")] == [1, 2, 10]
    assert parse_settings("patch-size", "64,128", "demo")[1].train == {"patch_size": 128}
    assert parse_settings("data-size", "0.25,1", "demo")[0].train == {"scene_fraction": 0.25}
    default, both = parse_settings("data-prep", "default;border_distance=10,land=exclude", "demo")
    assert default.train == {} and both.train == {"border_distance": 10, "land": "exclude"}
    unet, deeplab, filters = parse_settings(
        "model", "unet;model=deeplabv3,deeplab_depth=50;unet_filters=8,8,16,16", "demo"
    )
    assert unet.train == {"model": "unet"} and deeplab.train == {"model": "deeplabv3", "deeplab_depth": 50}
    patch = parse_settings("model", "resnet18;model=patchcnn,patch_size=32,patch_stride=8", "demo")
    assert patch[0].train == {"model": "resnet18"}
    assert patch[1].train == {"model": "patchcnn", "patch_size": 32, "patch_stride": 8}
    assert filters.train == {"unet_filters": "8,8,16,16"} and filters.by == ()


@pytest.mark.parametrize(
    "kind, values, match",
    [
        ("season", "melt,spring", "season 'spring': give all, freeze, melt, DJF"),
        ("downsample", "1,0", "downsample '0': give integer factors of 1 or more"),
        ("patch-size", "8", "patch-size '8': give integer sizes of 16 or more"),
        ("data-size", "0.5,1.5", "data-size '1.5': give fractions above 0 and at most 1"),
        ("data-prep", "lr=0.1", "lr is not one of augment, border_distance.*other options go to --fixed"),
        ("data-prep", "augment=flip,rot90", "'rot90': write name=value.*separate the settings by semicolons"),
        ("data-prep", "border_distance=x", "border_distance=x: not a int"),
        ("model", "unet,unet", "unet is given twice"),
        ("model", "resnet", "'resnet': write name=value"),
    ],
)
def test_bad_values_name_the_option_and_the_setting(kind, values, match):
    with pytest.raises(ParameterError, match=f"option --values: .*{match}"):
        parse_settings(kind, values, "demo")


def test_values_split_at_semicolons_when_there_are_any():
    assert split_values("1, 2,4") == ["1", "2", "4"]
    assert split_values("unet_filters=8,8,16,16; unet_filters=16,32,64,64") == [
        "unet_filters=8,8,16,16",
        "unet_filters=16,32,64,64",
    ]
    assert parse_seeds("0, 1,2") == [0, 1, 2]
    for bad in ("", "0,0", "a"):
        with pytest.raises(ParameterError, match="option --seeds"):
            parse_seeds(bad)


def test_a_patch_size_study_holds_the_pixels_per_batch_unless_told_otherwise(tmp_path):
    assert batch_for_patch(128, 64, 16) == 4 and batch_for_patch(32, 64, 16) == 64 and batch_for_patch(512, 64, 2) == 1
    options = StudyDefaults(values="32,64,128", profile="demo", out=str(tmp_path))
    plan = plan_study("patch-size", options)
    demo = PIPELINE_PROFILES["demo"].train
    pixels = [(c.config.patch_size, c.config.batch_size) for c in plan_children(plan, tmp_path, tmp_path, tmp_path)]
    assert pixels == [(32, 64), (64, 16), (128, 4)] and demo["patch_size"] == 64 and demo["batch_size"] == 16
    plan = plan_study("patch-size", StudyDefaults(values="32,64,128", profile="demo", patch_batch="batch"))
    assert {c.config.batch_size for c in plan_children(plan, tmp_path, tmp_path, tmp_path)} == {16}


def test_children_share_a_store_unless_the_setting_changes_it_and_each_has_its_own_key(ready_dir, test_dir, tmp_path):
    plan = plan_study("downsample", StudyDefaults(values="2,4", seeds="0,1", profile="demo", fixed="epochs=3"))
    children = plan_children(plan, ready_dir, test_dir, tmp_path)
    assert len({c.store.out for c in children}) == 2 and len({c.key for c in children}) == 4
    assert [c.store.downsample for c in children] == [2, 2, 4, 4] and {c.config.epochs for c in children} == {3}
    assert len({c.config.out for c in children}) == 4
    plan = plan_study("data-size", StudyDefaults(values="0.5,1", profile="demo"))
    assert len({c.store.out for c in plan_children(plan, ready_dir, test_dir, tmp_path)}) == 1
    keys = [c.key for c in plan_children(plan, ready_dir, test_dir, tmp_path)]
    assert keys == [c.key for c in plan_children(plan, ready_dir, test_dir, tmp_path)]


def test_a_child_is_keyed_by_the_content_of_the_scenes_not_by_their_folder(ready_dir, test_dir, tmp_path):
    """A re-run after scenes were swapped must train again; the same files in another folder need not."""
    plan = plan_study("data-size", StudyDefaults(values="0.5,1", profile="demo"))
    train, test = shutil.copytree(ready_dir, tmp_path / "train"), shutil.copytree(test_dir, tmp_path / "test")

    def keys(train_dir, test_dir) -> list[str]:
        return [c.key for c in plan_children(plan, train_dir, test_dir, tmp_path / "work")]

    original = keys(ready_dir, test_dir)
    assert keys(train, test) == original  # the same content elsewhere: the same children
    first, second = prep_files(train)
    shutil.copyfile(second, first)  # a scene swapped under the same name
    swapped = keys(train, test)
    assert len(set(swapped)) == 2 and not set(swapped) & set(original)
    reference = sorted(test.glob("*_prep_reference.nc"))[0]
    reference.write_bytes(reference.read_bytes()[:-1] + b"\0")  # other test references
    assert not set(keys(train, test)) & set(swapped)


@pytest.mark.parametrize(
    "kind, options, match",
    [
        ("patch-size", {"fixed": "batch_size=4"}, "option --fixed: batch_size is what a patch-size study varies"),
        ("data-size", {"fixed": "scene_fraction=0.5"}, "option --fixed: scene_fraction is what"),
        ("model", {"fixed": "epochs=0"}, "option --fixed: --epochs must be > 0"),
        ("model", {"fixed": "seed=3"}, "option --fixed: seed is set by the study \\(--seeds"),
        ("model", {"values": "unet_filters=8,8,16,16"}, "is given twice; separate the settings by semicolons"),
        ("model", {"values": "unet_filters=0"}, "option --values: model 'unet_filters=0': --unet-filters"),
        ("model", {"values": "pretrained=/no/file"}, "option --values: model 'pretrained=/no/file': --pretrained"),
        ("model", {"data_dir": "/somewhere"}, "option --test-dir: give the test scenes of your data too"),
    ],
)
def test_bad_options_fail_when_planned(kind, options, match):
    with pytest.raises(ParameterError, match=match):
        plan_study(kind, StudyDefaults(**options))


def test_scene_shares_are_nested_and_never_empty():
    scenes = [f"s{i:02d}" for i in range(20)]
    quarter, half = scene_share(scenes, 0.25, seed=3), scene_share(scenes, 0.5, seed=3)
    assert len(quarter) == 5 and len(half) == 10 and set(quarter) < set(half)
    assert scene_share(scenes, 0.25, seed=4) != quarter and scene_share(scenes, 1.0, seed=3) == scenes
    assert len(scene_share(scenes[:3], 0.01, seed=0)) == 1


def test_the_table_has_the_mean_and_spread_over_seeds():
    one = SettingResult(Setting("a"), (0, 1), ("r1", "r2"), ({"test_combined": 70.0, "test_melt_combined": 60.0},
                                                            {"test_combined": 74.0}))  # fmt: skip
    two = SettingResult(Setting("b"), (0,), ("r3",), ({"test_combined": 80.0, "test_SOD_f1": 90.0},))
    rows = table_rows([one, two])
    assert rows[0]["test_combined_mean"] == 72.0 and rows[0]["test_combined_std"] == pytest.approx(math.sqrt(8))
    assert rows[0]["test_melt_combined_mean"] == 60.0 and math.isnan(rows[0]["test_melt_combined_std"])
    assert math.isnan(rows[0]["test_SOD_f1_mean"]) and rows[1]["test_SOD_f1_mean"] == 90.0
    assert list(rows[0])[:5] == ["setting", "seeds", "runs", "test_combined_mean", "test_combined_std"]
    table = markdown_table("model", [one, two])
    assert "| a | 2 | 72.00 ± 2.83 |  | 60.00 |" in table and "| b | 1 | 80.00 | 90.00 |  |" in table
    assert "below 0" not in table


def test_a_table_with_negative_scores_says_what_they_mean():
    poor = SettingResult(Setting("a"), (0,), ("r1",), ({"test_combined": -4.5, "test_SIC_r2": -61.0,
                                                        "test_SOD_f1": 20.0},))  # fmt: skip
    good = SettingResult(Setting("b"), (0,), ("r2",), ({"test_combined": 60.0, "test_SIC_r2": 40.0,
                                                        "test_SOD_f1": 70.0},))  # fmt: skip
    table = markdown_table("model", [poor, good])
    assert "| a | 1 | -4.50 | -61.00 | 20.00 |" in table
    notes = [line for line in table.splitlines() if not line.startswith("|")]
    assert any("SIC_r2 below 0" in line and "worse than" in line and "mean" in line for line in notes), table
    assert any("combined" in line and "not clipped" in line for line in notes), table


def study_args(ready_dir, test_dir, out, *extra: str) -> list[str]:
    return ["study", "downsample", "--values", "1,2", "--profile", "smoke", "--data-dir", str(ready_dir),
            "--test-dir", str(test_dir), "--fixed", FIXED, "--out", str(out), "--device", "cpu", *extra]  # fmt: skip


def study_run_id(output: str) -> str:
    return re.search(r"^run (\w+): downsample study", output, re.M).group(1)


def children_of(run_id: str) -> list:
    experiment = mlflow.get_run(run_id).info.experiment_id
    return mlflow.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{run_id}'", output_format="list")


@pytest.mark.slow
def test_a_study_runs_each_setting_as_a_child_chain_and_a_rerun_only_the_missing_ones(
    ready_dir, test_dir, tmp_path, tracking
):
    runner = CliRunner()
    first = runner.invoke(cli, study_args(ready_dir, test_dir, tmp_path / "study"))
    assert first.exit_code == 0, first.output
    parent_id = study_run_id(first.output)
    parent = mlflow.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["seaice.entry_point"] == "study"
    assert parent.data.params["values"] == "1;2" and parent.data.metrics["children_run"] == 2
    children = sorted(children_of(parent_id), key=lambda r: r.data.tags["seaice.study.setting"])
    assert [c.data.tags["seaice.study.setting"] for c in children] == ["1", "2"]
    for child in children:
        steps = {r.data.tags["seaice.entry_point"]: r for r in children_of(child.info.run_id)}
        assert set(steps) == {"preprocess", "train", "evaluate"}  # each setting its own store
        assert steps["preprocess"].data.params["downsample"] == child.data.params["downsample"]
        assert steps["train"].data.params["patch_size"] == "32" and steps["train"].data.params["seed"] == "0"
        scored = steps["evaluate"].data.metrics
        assert {k: v for k, v in child.data.metrics.items() if k.startswith("test_")} == {
            k: v for k, v in scored.items() if k.startswith("test_")
        }
    client = mlflow.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(parent_id)}
    assert {"study.csv", "study.md", "study.png"} <= artifacts
    rows = list(csv.DictReader(io.StringIO(mlflow.artifacts.load_text(f"runs:/{parent_id}/study.csv"))))
    assert [r["setting"] for r in rows] == ["1", "2"] and rows[0]["test_combined_std"] == ""
    for row, child in zip(rows, children):
        assert row["runs"] == child.info.run_id
        assert float(row["test_combined_mean"]) == pytest.approx(child.data.metrics["test_combined"])
    best = max(children, key=lambda c: c.data.metrics["test_combined"])
    assert parent.data.tags["seaice.study.best_setting"] == best.data.tags["seaice.study.setting"]
    assert "| downsample | seeds | combined | SIC_r2 | SOD_f1 | FLOE_f1 |" in first.output

    again = runner.invoke(cli, study_args(ready_dir, test_dir, tmp_path / "study"))
    assert again.exit_code == 0, again.output
    assert "0 child run(s) trained now, 2 reused" in again.output and children_of(study_run_id(again.output)) == []
    assert again.output.count("done earlier") == 2

    more = runner.invoke(cli, study_args(ready_dir, test_dir, tmp_path / "study", "--seeds", "0,1"))
    assert more.exit_code == 0, more.output
    new = children_of(study_run_id(more.output))
    assert sorted(c.data.tags["seaice.study.seed"] for c in new) == ["1", "1"]
    steps = {r.data.tags["seaice.entry_point"] for c in new for r in children_of(c.info.run_id)}
    assert steps == {"preprocess", "train", "evaluate"}  # the stores are brought up to date once per study
    rows = list(csv.DictReader(io.StringIO(mlflow.artifacts.load_text(f"runs:/{study_run_id(more.output)}/study.csv"))))
    assert [r["seeds"] for r in rows] == ["0 1", "0 1"] and all(r["test_combined_std"] for r in rows)


def test_a_setting_no_scene_meets_fails_before_any_run(ready_dir, test_dir, tmp_path, tracking):
    before = len(mlflow.search_runs(search_all_experiments=True))
    args = study_args(ready_dir, test_dir, tmp_path / "study")
    args[1], args[3] = "region", "Qaanaaq"
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "option --values: region 'Qaanaaq': --scenes-where no scene meets 'region=Qaanaaq'" in result.output
    args[3] = "Atlantis"
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and "region='Atlantis': not one of" in result.output
    assert len(mlflow.search_runs(search_all_experiments=True)) == before
