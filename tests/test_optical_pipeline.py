"""The optical MLflow workflow: ensembles of logged models, the champion rule per task family,
evaluate's check for training photos, and `seaice optical pipeline` (optical_main) end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.tasks.optical.config import OpticalRegisterDefaults, OpticalTrainDefaults
from seaice_mlflow.tasks.optical.logged_models import load_optical_models
from seaice_mlflow.tasks.optical.readers import read_image
from seaice_mlflow.tasks.optical.steps.evaluate import evaluate
from seaice_mlflow.tasks.optical.steps.train import train
from seaice_mlflow.tasks.optical.synthetic import synthesize_photos
from seaice_mlflow.tracking.model_refs import TASK_TAG
from seaice_mlflow.tracking.registration import register
from seaice_mlflow.tracking.registry import experiment_models, model_id_of

EXPERIMENT = "optical-pipeline-test"
TINY = {"epochs": 1, "batches_per_epoch": 2, "batch_size": 2, "patch_size": 64, "workers": 0, "device": "cpu",
        "val_tile": 128}  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Training and held-out photos, two tiny models trained on them, in one sqlite store."""
    root = tmp_path_factory.mktemp("optical-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    synthesize_photos(root / "train", n_images=4, size=(96, 128), seed=2)
    synthesize_photos(root / "test", n_images=2, size=(96, 128), seed=3)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(EXPERIMENT)
        models = [train(root / "train", OpticalTrainDefaults(**TINY, model=model, seed=seed, out=str(root / model)))
                  for model, seed in (("smp_unet", 0), ("pspnet", 1))]  # fmt: skip
    return {"root": root, "uri": uri, "models": [m.model_uri for m in models]}


@pytest.fixture
def tracked(store, monkeypatch):
    """The store's tracking URI and experiment for one test (the shared fixture clears them)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    mlflow.set_tracking_uri(store["uri"])
    mlflow.set_experiment(EXPERIMENT)
    return store


@pytest.mark.slow
def test_an_ensemble_averages_its_members_probabilities(tracked):
    photo = read_image(sorted((tracked["root"] / "test").glob("photo_*[0-9].png"))[0])
    members = [load_optical_models(uri, "cpu", 64, probabilities=True)[0] for uri in tracked["models"]]
    ensemble, refs = load_optical_models(tracked["models"], "cpu", 64, probabilities=True)
    assert [r.canonical_uri for r in refs] == tracked["models"] and len(ensemble.predictor.models) == 2
    ids, scores = ensemble.predict_photo(photo)
    mean = np.mean([m.predict_photo(photo)[1] for m in members], axis=0)
    np.testing.assert_allclose(scores, mean, atol=1e-5)
    assert np.array_equal(ids, np.array(ensemble.recipe.table.ids, np.uint8)[mean.argmax(0)])


@pytest.mark.slow
def test_evaluate_tags_training_photos_and_scores_the_ensemble(tracked):
    warnings: list[str] = []
    on_training = evaluate(tracked["models"][0], tracked["root"] / "train", device="cpu", tile=64, warn=warnings.append)
    run = mlflow.get_run(on_training.run_id)
    assert run.data.tags["seaice.scored_on_training_scenes"] == "true" and run.data.metrics["eval_training_photos"] == 4
    assert "4 of the 4 photo(s) are training or validation photos" in warnings[0]
    held_out = evaluate(tracked["models"], tracked["root"] / "test", device="cpu", tile=64, warn=warnings.append)
    run = mlflow.get_run(held_out.run_id)
    assert run.data.tags["seaice.scored_on_training_scenes"] == "false" and len(warnings) == 1
    assert run.data.tags["seaice.ensemble_size"] == "2" and run.data.tags["seaice.model_uri"] == ",".join(
        tracked["models"]
    )
    assert run.data.metrics["test_combined"] == run.data.metrics["test_miou"] == held_out.scores.miou


@pytest.mark.slow
def test_optical_register_ranks_only_optical_models(tracked):
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    with mlflow.start_run(experiment_id=experiment.experiment_id):  # a better-scored model of another task
        mlflow.log_metric("best_val_combined", 99.0)
        sar = mlflow.pyfunc.log_model(name="model", python_model=Constant(), tags={TASK_TAG: "autoice"})
    for uri in tracked["models"]:
        evaluate(uri, tracked["root"] / "test", device="cpu", tile=64)
    optical = experiment_models(experiment.experiment_id, "optical")
    assert sorted(f"models:/{m}" for m in optical) == sorted(tracked["models"])
    assert sar.model_id in experiment_models(experiment.experiment_id, "autoice")
    promotion = register(OpticalRegisterDefaults(experiment=EXPERIMENT, model_name="optical-test")).promotion
    assert promotion.metric == "test_combined" and promotion.promoted
    champion = model_id_of(mlflow.MlflowClient().get_model_version_by_alias("optical-test", "champion"))
    assert f"models:/{champion}" in tracked["models"]
    scores = {uri: mlflow.search_runs(filter_string=f"tags.`seaice.model_uri` = '{uri}' and "
                                      "tags.`seaice.entry_point` = 'optical_evaluate' and "
                                      "tags.`seaice.scored_on_training_scenes` = 'false'",
                                      output_format="list")[0].data.metrics["test_combined"]
              for uri in tracked["models"]}  # fmt: skip
    assert f"models:/{champion}" == max(scores, key=scores.get)


def test_ensembles_of_other_classes_are_refused(tracked, tmp_path):
    other = tmp_path / "other"
    synthesize_photos(other, n_images=3, size=(64, 96), seed=5)
    config = json.loads((other / "config.json").read_text())
    first = next(iter(config["labels"]))
    config["labels"] = {("clear sky" if name == first else name): label for name, label in config["labels"].items()}
    config["labels"]["clear sky"]["name"] = "clear sky"
    (other / "config.json").write_text(json.dumps(config))
    trained = train(other, OpticalTrainDefaults(**TINY, out=str(tmp_path / "c")))
    with pytest.raises(ParameterError, match="option --model-uri: .* predicts the classes"):
        load_optical_models([tracked["models"][0], trained.model_uri], "cpu")


class Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: list[str], params=None) -> list[str]:
        return model_input


@pytest.mark.slow
def test_optical_pipeline_runs_every_step_as_child_runs(tmp_path, monkeypatch):
    """`.venv/bin/seaice optical pipeline --profile smoke` with the venv not on PATH."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "PATH": "/usr/bin:/bin", "MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": "optical"}
    command = [str(Path(sys.executable).parent / "seaice"), "optical", "pipeline", "--profile", "smoke", "--out",
               str(tmp_path / "work")]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "champion models:/seaice-optical@champion" in done.stdout
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["optical"], output_format="list")
    steps = {r.data.tags["seaice.entry_point"]: r for r in runs}
    assert set(steps) == {"optical_main", "optical_train", "optical_evaluate", "register", "optical_predict"}
    parent = steps["optical_main"].info.run_id
    assert all(r.data.tags.get("mlflow.parentRunId") == parent for k, r in steps.items() if k != "optical_main")
    assert all(r.info.status == "FINISHED" for r in runs)
    assert steps["register"].data.params["task"] == "optical"
    masks = sorted(p.name for p in (tmp_path / "work" / "masks").glob("*_color_mask.png"))
    assert masks == ["photo_0000_color_mask.png", "photo_0001_color_mask.png"]
    assert "test_miou" in steps["optical_main"].data.metrics
