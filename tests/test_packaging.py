"""The project's packaging: conda.yaml agrees with pyproject, CI runs the README's test command."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def requirements(lines):
    return {Requirement(line).name.lower(): str(Requirement(line).specifier) for line in lines}


def test_conda_env_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip_lists = [d["pip"] for d in conda["dependencies"] if isinstance(d, dict)]
    assert len(pip_lists) == 1
    assert requirements(pip_lists[0]) == requirements(project["dependencies"])
    assert "python=3.11" in conda["dependencies"] and "pip" in conda["dependencies"]
    assert {"mlflow", "torch", "torchvision", "xarray", "netcdf4", "scikit-learn", "click"} <= set(
        requirements(project["dependencies"])
    )


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^make test$", ci, re.M)
    assert "make test" in readme and "make demo" in readme
    assert re.search(r"^demo: ", makefile, re.M)
    assert re.search(r"^test: ", makefile, re.M) and "pytest" in makefile


def test_project_layout():
    for name in (
        "MLproject",
        "conda.yaml",
        "pyproject.toml",
        "README.md",
        "Makefile",
        ".ci/run",
        "seaice_mlflow",
        "entrypoints",
        "tests",
        "benchmarks",
        "notebooks",
    ):
        assert (ROOT / name).exists(), name
