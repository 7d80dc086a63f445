"""Every `--json` output of the command line is strict JSON (RFC 8259): no NaN or Infinity, `null` where
there is no value, so that `jq`, JavaScript and any strict parser read it."""

from __future__ import annotations

import json

import click
import mlflow
import numpy as np
from click.testing import CliRunner

from seaice_mlflow.cli import cli
from seaice_mlflow.cli.output import json_text
from seaice_mlflow.models import build_model, spec_from_options
from seaice_mlflow.tasks.autoice.charts import AUTOICE
from seaice_mlflow.tasks.autoice.files.prep import read_charts
from seaice_mlflow.tasks.autoice.files.reader import find_references
from seaice_mlflow.tasks.autoice.files.variables import SCENE_VARIABLES
from seaice_mlflow.tasks.autoice.pyfunc import log_chart_model
from seaice_mlflow.tasks.autoice.recipe import Recipe
from seaice_mlflow.tasks.autoice.upload import write_upload_package
from seaice_mlflow.tasks.optical.pyfunc import log_photo_model
from seaice_mlflow.tasks.optical.readers import open_folder
from seaice_mlflow.tasks.optical.recipe import PhotoRecipe
from seaice_mlflow.tasks.optical.synthetic import synthesize_photos

EXPERIMENT = "json-output-test"


def strict(text: str):
    """``json.loads`` that refuses NaN, Infinity and -Infinity, as strict parsers do."""

    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def json_commands(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> set[str]:
    """Every command of the CLI that has a ``--json`` option, as its words (``optical evaluate``)."""
    found = set()
    for name, command in group.commands.items():
        words = (*prefix, name)
        if isinstance(command, click.Group):
            found |= json_commands(command, words)
        elif any("--json" in p.opts for p in command.params):
            found.add(" ".join(words))
    return found


def test_json_text_writes_null_for_values_that_are_no_number():
    value = {"a": float("nan"), "b": [1.5, float("inf"), -float("inf")], "c": np.float32("nan"), "d": np.int64(3)}
    assert strict(json_text(value)) == {"a": None, "b": [1.5, None, None], "c": None, "d": 3}


def test_every_json_output_is_strict_json(ready_dir, test_dir, tmp_path, tracking):
    """Each command with --json, on cases that hold values without a number (a spread over one
    patch, the scores of classes that are absent), parses with a strict parser."""
    mlflow.set_experiment(EXPERIMENT)
    spec = spec_from_options("unet", len(SCENE_VARIABLES), AUTOICE.outputs(), {"unet_filters": (2, 2)})
    photos = tmp_path / "photos"
    synthesize_photos(photos, n_images=2, size=(64, 80), seed=1)
    table = open_folder(photos).table
    photo_spec = spec_from_options("unet", 3, table.to_task().outputs(), {"unet_filters": (2, 2)})
    with mlflow.start_run():
        chart_model = log_chart_model(build_model(spec), Recipe(spec, SCENE_VARIABLES)).model_uri
        photo_model = log_photo_model(build_model(photo_spec), PhotoRecipe(photo_spec, table)).model_uri
    references = find_references(test_dir)
    package = write_upload_package(tmp_path / "upload_package.nc",
                                   {k: {c: np.zeros_like(v) for c, v in read_charts(p).items()}
                                    for k, p in references.items()})  # fmt: skip
    cases = {
        "inspect": ["inspect", *map(str, sorted(ready_dir.glob("*_prep.nc")))],
        "score": ["score", "--reference", str(test_dir), "--predictions", str(package), "--metrics", "all"],
        "explain": ["explain", "--model-uri", chart_model, "--data-dir", str(ready_dir), "--patches", "1",
                    "--patch-size", "16", "--methods", "ig", "--steps", "2", "--out", str(tmp_path / "explain"),
                    "--device", "cpu"],
        "optical inspect": ["optical", "inspect", str(photos)],
        "optical evaluate": ["optical", "evaluate", "--model-uri", photo_model, "--data-dir", str(photos),
                             "--device", "cpu", "--tile", "64"],
    }  # fmt: skip
    assert set(cases) == json_commands(), "a command with --json has no case here"
    parsed = {}
    for name, args in cases.items():
        result = CliRunner().invoke(cli, [*args, "--json"])  # stdout apart from stderr's progress lines
        assert result.exit_code == 0, (name, result.output)
        parsed[name] = strict(result.stdout)
    assert any(row["share_spread"] is None for row in parsed["explain"])  # one patch: no spread
