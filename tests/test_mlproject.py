"""MLproject parameters, click options and logged params agree; entry points run via MLflow Projects."""

import os
import sys
from pathlib import Path

import click
import mlflow
import pytest
import yaml

from seaice_mlflow.cli import cli

ROOT = Path(__file__).resolve().parent.parent
PROJECT = yaml.safe_load((ROOT / "MLproject").read_text())


#: MLproject entry points whose `seaice` command has another name
COMMANDS = {"main": "pipeline", "optical_main": "optical pipeline", "optical_train": "optical train",
            "optical_evaluate": "optical evaluate", "optical_predict": "optical predict"}  # fmt: skip


def command_of(entry_point: str) -> click.Command:
    """The click command an entry point runs (a group's command for the optical ones)."""
    command = cli
    for name in COMMANDS.get(entry_point, entry_point).split():
        command = command.commands[name]
    return command


def test_every_command_is_an_entry_point():
    assert set(PROJECT["entry_points"]) == {
        "main",
        "preprocess",
        "train",
        "evaluate",
        "register",
        "predict",
        "tune",
        "study",
        "explain",
        "optical_train",
        "optical_evaluate",
        "optical_predict",
        "optical_main",
    }
    assert all(command_of(name) for name in PROJECT["entry_points"])


def entry_points():
    return sorted(PROJECT["entry_points"])


@pytest.mark.parametrize("name", entry_points())
def test_parameters_reach_the_command_and_the_cli(name):
    spec = PROJECT["entry_points"][name]
    command_line = " ".join(spec["command"].split())
    assert command_line.startswith(f"python -m entrypoints.{name} ")
    assert (ROOT / "entrypoints" / f"{name}.py").is_file()
    command = command_of(name)
    options = {p.name: p for p in command.params if isinstance(p, click.Option) and p.name != "help"}
    arguments = [p.name for p in command.params if isinstance(p, click.Argument)]
    assert set(spec["parameters"]) == set(options) | set(arguments), "MLproject and click parameters differ"
    positional = " ".join(f"{{{name}}}" for name in arguments)
    assert command_line.startswith(f"python -m entrypoints.{name} {positional}".rstrip() + " ")
    for param, declared in spec["parameters"].items():
        if param in arguments:
            continue
        flag = "--" + param.replace("_", "-")
        assert f"{flag} {{{param}}}" in command_line, f"{param} does not reach the command"
        option = options[param]
        assert flag in option.opts
        if isinstance(declared, dict) and "default" in declared:
            cast = option.type.convert(str(declared["default"]), option, None)
            assert cast == option.default or str(cast) == str(option.default), param


@pytest.fixture
def project_env(tmp_path, monkeypatch) -> str:
    """A fresh sqlite tracking store, and this interpreter's venv first on PATH (the MLproject
    commands call ``python``, as `mlflow run --env-manager local` does inside the venv)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    mlflow.set_tracking_uri(uri)
    return uri


def test_mlflow_run_preprocess(ready_dir, tmp_path, project_env):
    submitted = mlflow.projects.run(
        str(ROOT),
        entry_point="preprocess",
        env_manager="local",
        experiment_name="project",
        parameters={"data_dir": str(ready_dir), "out": str(tmp_path / "store"), "val_scenes": 1},
    )
    assert submitted.wait()
    run = mlflow.get_run(submitted.run_id)
    assert run.info.status == "FINISHED"
    assert set(PROJECT["entry_points"]["preprocess"]["parameters"]) <= set(run.data.params)
    assert run.data.metrics["scenes"] == 2
    assert (tmp_path / "store" / "manifest.json").is_file()
