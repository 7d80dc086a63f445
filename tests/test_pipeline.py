"""The quickstart notebook executed with nbclient: the `main` pipeline end to end at smoke size."""

import os
import sys
from pathlib import Path

import mlflow
import nbformat
import pytest
from nbclient import NotebookClient

from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.tasks.autoice.steps.main import PROFILES, scene_folders
from seaice_mlflow.tasks.autoice.train_config import TrainConfig
from seaice_mlflow.tracking.projects import Pipeline

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def project_env(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    mlflow.set_tracking_uri(uri)
    return uri


#: A PATH without the venv (its python lacks the project's dependencies, or there is none).
BARE_PATH = "/usr/bin:/bin"
PROBE_PROJECT = """
name: probe
entry_points:
  probe:
    parameters:
      out: string
    command: "python -c 'import sys, pathlib; pathlib.Path(sys.argv[1]).write_text(sys.executable)' {out}"
"""


def test_steps_run_with_this_interpreter_without_the_venv_on_path(tmp_path, project_env, monkeypatch):
    (tmp_path / "MLproject").write_text(PROBE_PROJECT)
    monkeypatch.setenv("PATH", BARE_PATH)
    experiment_id = mlflow.create_experiment("probe")
    with mlflow.start_run(experiment_id=experiment_id) as parent:
        run = Pipeline(experiment_id, parent.info.run_id, project=tmp_path).step("probe", {"out": tmp_path / "used"})
    assert (tmp_path / "used").read_text() == sys.executable
    assert os.environ["PATH"] == BARE_PATH and run.data.tags["mlflow.parentRunId"] == parent.info.run_id


def test_quickstart_notebook_runs_the_main_pipeline_as_child_runs(tmp_path, project_env, monkeypatch):
    """The notebook runs `mlflow run . -e main` (smoke profile), whose steps are child runs; that steps
    run without the venv on PATH is the probe test above."""
    monkeypatch.setenv("SEAICE_PROFILE", "smoke")
    monkeypatch.setenv("SEAICE_WORKDIR", str(tmp_path / "notebook"))
    notebook = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.output_type == "display_data" and "image/png" in o.data for o in outputs)
    [parent] = mlflow.search_runs(
        experiment_names=["quickstart"], output_format="list", filter_string="tags.`seaice.entry_point` = 'main'"
    )
    assert parent.info.status == "FINISHED"
    children = mlflow.search_runs(
        experiment_names=["quickstart"],
        output_format="list",
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    steps = {run.data.tags["seaice.entry_point"] for run in children}
    assert steps == {"preprocess", "train", "evaluate", "register", "predict"}
    assert all(run.info.status == "FINISHED" for run in children)
    assert parent.data.tags["seaice.champion_uri"] == "models:/quickstart-charts@champion"
    assert parent.data.tags["seaice.model_uri"].startswith("models:/m-")
    trained = parent.data.tags["seaice.model_uri"]  # a new experiment: the model trained now is champion
    assert parent.data.tags["seaice.model_used.evaluate"] == trained
    assert parent.data.tags["seaice.model_used.predict"] == f"models:/quickstart-charts/1 ({trained})"
    assert parent.data.tags["seaice.trained_is_champion"] == "true"
    for metric in ("test_combined", "test_SIC_r2", "baseline_test_combined"):
        assert metric in parent.data.metrics
    assert list((tmp_path / "notebook" / "pipeline" / "charts").glob("*_charts.nc"))


@pytest.mark.parametrize("name", list(PROFILES))
def test_profiles_are_valid_training_settings(name, tmp_path):
    profile = PROFILES[name]
    assert set(profile.train) <= set(TrainConfig.option_names())
    TrainConfig(store=str(tmp_path), **profile.train)  # raises ParameterError on a bad value
    assert 0 < profile.val_scenes < profile.train_scenes
    assert profile.test_scenes > 0 and profile.downsample >= 1


def test_scene_folders_refuse_a_folder_without_scenes(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParameterError, match="option --data-dir"):
        scene_folders(PROFILES["smoke"], str(tmp_path / "empty"), "", tmp_path, seed=0)
    with pytest.raises(ParameterError, match="option --test-dir"):
        scene_folders(PROFILES["smoke"], "", str(tmp_path / "missing"), tmp_path, seed=0)
