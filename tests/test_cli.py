"""The `seaice` command line: help everywhere, synth, inspect."""

import json
import subprocess
import sys
from dataclasses import fields

import click
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from seaice_mlflow.cli import cli
from seaice_mlflow.core.defaults import RegisterDefaults, ServeDefaults
from seaice_mlflow.tasks.autoice.config import PROFILES as PROFILE_NAMES
from seaice_mlflow.tasks.autoice.config import (
    EvaluateDefaults,
    PipelineDefaults,
    PredictDefaults,
    PreprocessDefaults,
    TrainDefaults,
)
from seaice_mlflow.tasks.autoice.steps.main import PROFILES
from tests.conftest import prep_files


@pytest.mark.parametrize("command", [None, *sorted(cli.commands)])
def test_help_on_every_command(command):
    args = ([command] if command else []) + ["--help"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "seaice_mlflow", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "synth" in out.stdout


def test_synth_writes_every_layout(tmp_path):
    runner = CliRunner()
    for split, fmt in (("train", "ready"), ("test", "ready"), ("train", "raw"), ("test", "raw")):
        out = tmp_path / f"{split}-{fmt}"
        result = runner.invoke(
            cli,
            [
                "synth",
                str(out),
                "--scenes",
                "1",
                "--size",
                "64",
                "70",
                "--split",
                split,
                "--format",
                fmt,
                "--seed",
                "3",
            ],
        )
        assert result.exit_code == 0, result.output
        written = sorted(p.name for p in out.iterdir())
        assert len(written) == (2 if split == "test" else 1)
        assert str(out) in result.output
    bad = runner.invoke(cli, ["synth", str(tmp_path / "x"), "--size", "10", "10"])
    assert bad.exit_code == 2 and "x>=50" in bad.output


def test_inspect_reports_every_file(ready_dir, test_dir, raw_dir, tmp_path):
    broken = tmp_path / "20190101T000000_cis_prep.nc"
    broken.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    misnamed = tmp_path / "scene.nc"
    misnamed.write_bytes(b"nothing")
    runner = CliRunner()
    good = runner.invoke(cli, ["inspect", str(ready_dir), str(test_dir), str(raw_dir)])
    assert good.exit_code == 0, good.output
    assert "ready, 96x128 px" in good.output and "test, 96x128 px" in good.output
    assert "reference, 96x128 px" in good.output and "raw, 96x128 px" in good.output
    assert "SIC " in good.output and "masked:" in good.output

    result = runner.invoke(cli, ["inspect", str(prep_files(ready_dir)[0]), str(broken), str(misnamed), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False
    ok, bad_file, bad_name = report["files"]
    assert ok["ok"] and ok["kind"] == "ready" and len(ok["histograms"]["SIC"]) == 12
    assert not bad_file["ok"] and "download it again" in bad_file["problem"]
    assert not bad_name["ok"] and "naming" in bad_name["problem"]

    text = runner.invoke(cli, ["inspect", str(broken), str(misnamed)])
    assert text.exit_code == 1
    assert text.output.count("BAD ") == 2 and "Traceback" not in text.output


def test_inspect_names_a_missing_path(tmp_path):
    missing = tmp_path / "missing"
    result = CliRunner().invoke(cli, ["inspect", str(missing)])
    assert result.exit_code == 1
    assert f"BAD {missing}: missing: does not exist: {missing}." in result.output
    assert "naming" not in result.output and "Traceback" not in result.output


COMMAND_DEFAULTS = {
    "preprocess": PreprocessDefaults,
    "train": TrainDefaults,
    "register": RegisterDefaults,
    "pipeline": PipelineDefaults,
    "evaluate": EvaluateDefaults,
    "predict": PredictDefaults,
    "serve": ServeDefaults,
}


@pytest.mark.parametrize("command", sorted(COMMAND_DEFAULTS))
def test_options_come_from_one_definition(command):
    """Every option with a default is a field of the command's defaults dataclass: its default, help
    text and allowed values are the field's."""
    defaults = COMMAND_DEFAULTS[command]
    options = {
        p.name: p
        for p in cli.commands[command].params
        if isinstance(p, click.Option) and p.default is not None and not p.required and p.name != "help"
    }
    assert set(options) == {f.name for f in fields(defaults)}
    for field in fields(defaults):
        option = options[field.name]
        assert option.default == field.default and option.help == field.metadata["help"] != ""
        if field.metadata["choices"]:
            assert tuple(option.type.choices) == field.metadata["choices"]


def test_the_pipeline_profiles_are_the_listed_choices():
    assert tuple(PROFILES) == PROFILE_NAMES


@pytest.mark.parametrize(
    "command",
    [
        ["preprocess", "--data-dir", "{missing}"],
        ["train", "--store", "{missing}"],
        ["evaluate", "--model-uri", "runs:/0123/model", "--data-dir", "{missing}"],
        ["explain", "--model-uri", "runs:/0123/model", "--data-dir", "{missing}"],
        ["inspect", "{missing}/S1A_x_prep.nc"],
        ["optical", "inspect", "{missing}"],
        ["optical", "predict", "--model-uri", "runs:/0123/model", "--images", "{missing}"],
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_a_missing_relative_path_under_mlflow_run_shows_where_it_was_looked_for(command, tmp_path, monkeypatch):
    """`mlflow run` runs a step in the project folder, not where it was started: the error shows the
    absolute path looked at and says so."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    step = MlflowClient(uri).create_run(MlflowClient(uri).create_experiment("steps"))  # as `mlflow run` makes it
    monkeypatch.setenv("MLFLOW_RUN_ID", step.info.run_id)  # what `mlflow run` sets for its step
    missing = "scenes/of-2024"
    result = CliRunner().invoke(cli, [arg.format(missing=missing) for arg in command])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert str(tmp_path / missing) in result.output  # the absolute path, under the working folder
    assert "under `mlflow run` a relative path starts in the project folder" in result.output


#: Libraries that take seconds to import; `seaice --help` and every command's help need none of them.
HEAVY = {"torch", "torchvision", "captum", "mlflow", "xarray", "netCDF4", "scipy", "pandas", "matplotlib", "sklearn"}
HEAVY |= {"optuna", "rasterio", "segmentation_models_pytorch", "dask", "distributed", "PIL", "shapely", "pyogrio"}
HELP_EVERYWHERE = """
import json, sys
import click
from click.testing import CliRunner
from seaice_mlflow.cli import cli

def helps(group, path):
    yield [*path, "--help"]
    for name, command in group.commands.items():
        yield from helps(command, [*path, name]) if isinstance(command, click.Group) else [[*path, name, "--help"]]

runner = CliRunner()
failed = [args for args in [["--version"], *helps(cli, [])] if runner.invoke(cli, args).exit_code != 0]
print(json.dumps({"failed": failed, "modules": sorted(sys.modules)}))
"""


def test_the_command_line_starts_without_heavy_libraries():
    """Start-up took 14-19 s for any command, `--help` included, while torch, torchvision and captum
    were imported up front; each command imports what it uses when it runs."""
    out = subprocess.run([sys.executable, "-c", HELP_EVERYWHERE], capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["failed"] == []
    assert sorted({m.split(".")[0] for m in seen["modules"]} & HEAVY) == []
