"""The optical MLflow workflow: ensembles of logged models, the champion rule per task family,
evaluate's check for training photos, and `seaice optical pipeline` (optical_main) end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.exceptions import MlflowException

from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.tasks.optical.config import OpticalRegisterDefaults, OpticalTrainDefaults
from seaice_mlflow.tasks.optical.logged_models import load_optical_models
from seaice_mlflow.tasks.optical.pyfunc import photo_batch
from seaice_mlflow.tasks.optical.readers import read_image
from seaice_mlflow.tasks.optical.steps.evaluate import evaluate
from seaice_mlflow.tasks.optical.steps.train import train
from seaice_mlflow.tasks.optical.synthetic import synthesize_photos
from seaice_mlflow.tracking.model_refs import TASK_TAG
from seaice_mlflow.tracking.registration import register
from seaice_mlflow.tracking.registry import experiment_models, model_id_of
from seaice_mlflow.tracking.runs import MODEL_ID_TAG, MODEL_URI_TAG, SCORED_ON_TRAINING_TAG
from tests.mlflow_server import free_port, stop_group, wait_until_healthy

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


def test_photos_sent_to_a_logged_model_are_bytes_0_255_or_floats_0_1():
    rgb = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    rgb[0, 0, 0] = (0, 128, 255)
    for sent in (rgb, rgb.astype(np.int64), rgb / 255.0, (rgb / 255.0).astype(np.float32), rgb.astype(np.float64)):
        assert np.array_equal(photo_batch(sent), rgb) and photo_batch(sent).dtype == np.uint8, sent.dtype
    for sent, problem in (
        (rgb + 0.5, r"floats from 0.5 to 255.5"),
        (rgb.astype(np.int64) - 1, r"integers from -1 to 254"),
        (np.where(rgb == 7, np.nan, rgb / 255.0), r"values that are not finite"),
        (rgb > 100, r"bool values"),
        (rgb[..., :2], r"an array of shape \(2, 5, 7, 2\)"),
    ):
        with pytest.raises(MlflowException, match=problem):
            photo_batch(sent)


@pytest.mark.slow
def test_the_served_photo_model_reads_floats_in_0_1_and_refuses_what_it_would_truncate(tracked, tmp_path):
    """`mlflow models serve` cast every JSON number to the signature's uint8: 0.5 became 0 (HTTP 200)."""
    photo = read_image(sorted((tracked["root"] / "test").glob("photo_*[0-9].png"))[0])[None]
    port, bin_dir = free_port(), Path(sys.executable).parent
    command = [str(bin_dir / "mlflow"), "models", "serve", "-m", tracked["models"][0], "--env-manager", "local",
               "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
                            start_new_session=True)  # fmt: skip

    def post(pixels: np.ndarray) -> tuple[int, dict]:
        body = json.dumps({"inputs": pixels.tolist()}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/ping", proc)
        status, answer = post(photo)
        assert status == 200, answer
        expected = load_optical_models(tracked["models"][0], "cpu")[0].predict_photo(photo[0])[0]
        assert np.array_equal(np.asarray(answer["predictions"]["ice"])[0], expected)
        assert post(photo / 255.0) == (status, answer)
        status, answer = post(photo + 0.5)
        assert status == 400 and "neither 0-1 nor whole numbers 0-255" in answer["message"], answer
    finally:
        stop_group(proc)


class Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: list[str], params=None) -> list[str]:
        return model_input


@pytest.mark.slow
def better_champion(photos: Path, out: Path) -> str:
    """A tiny model registered as seaice-optical's champion with a perfect test score (an evaluate
    run of it as `seaice optical evaluate` tags one): the pipeline's new model cannot beat it."""
    old = train(photos, OpticalTrainDefaults(**TINY, out=str(out)))
    mlflow.set_experiment("optical")
    with mlflow.start_run():
        mlflow.set_tags({"seaice.entry_point": "optical_evaluate", MODEL_URI_TAG: old.model_uri,
                         MODEL_ID_TAG: old.model_uri.removeprefix("models:/"),
                         SCORED_ON_TRAINING_TAG: "false"})  # fmt: skip
        mlflow.log_metrics({"test_combined": 100.0, "test_miou": 100.0})
    assert str(register(OpticalRegisterDefaults(experiment="optical")).promotion.champion) == "1"
    return old.model_uri


def test_optical_pipeline_runs_every_step_as_child_runs(tmp_path, monkeypatch):
    """`.venv/bin/seaice optical pipeline --profile smoke` with the venv not on PATH, in an experiment
    whose champion the new model does not beat: the pipeline says which model each step used."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "optical")
    mlflow.set_tracking_uri(uri)
    synthesize_photos(tmp_path / "old-photos", n_images=2, size=(96, 128), seed=7)
    champion = better_champion(tmp_path / "old-photos", tmp_path / "old")
    env = {**os.environ, "PATH": "/usr/bin:/bin", "MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": "optical"}
    command = [str(Path(sys.executable).parent / "seaice"), "optical", "pipeline", "--profile", "smoke", "--out",
               str(tmp_path / "work")]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "champion models:/seaice-optical@champion" in done.stdout
    [main] = mlflow.search_runs(experiment_names=["optical"], output_format="list",
                                filter_string="tags.`seaice.entry_point` = 'optical_main'")  # fmt: skip
    runs = [main, *mlflow.search_runs(experiment_names=["optical"], output_format="list",
                                      filter_string=f"tags.mlflow.parentRunId = '{main.info.run_id}'")]  # fmt: skip
    steps = {r.data.tags["seaice.entry_point"]: r for r in runs}
    assert set(steps) == {"optical_main", "optical_train", "optical_evaluate", "register", "optical_predict"}
    parent = steps["optical_main"].info.run_id
    assert all(r.data.tags.get("mlflow.parentRunId") == parent for k, r in steps.items() if k != "optical_main")
    assert all(r.info.status == "FINISHED" for r in runs)
    assert steps["register"].data.params["task"] == "optical"
    names = {step: run.info.run_name for step, run in steps.items()}  # not MLflow's random names of `mlflow run`
    assert names["optical_main"] == "optical main smoke" and names["register"] == "register seaice-optical"
    assert names["optical_train"].startswith("optical train smp_unet ")
    assert names["optical_evaluate"].startswith("optical evaluate m-") and names["optical_evaluate"].endswith(" photos")
    assert names["optical_predict"] == "optical predict seaice-optical@champion on 2 photos"
    masks = sorted(p.name for p in (tmp_path / "work" / "masks").glob("*_color_mask.png"))
    assert masks == ["photo_0000_color_mask.png", "photo_0001_color_mask.png"]
    assert "test_miou" in steps["optical_main"].data.metrics
    trained = steps["optical_train"].data.tags[MODEL_URI_TAG]
    used = {step: main.data.tags[f"seaice.model_used.{step}"] for step in ("optical_evaluate", "optical_predict")}
    assert used == {"optical_evaluate": trained, "optical_predict": f"models:/seaice-optical/1 ({champion})"}
    assert main.data.tags["seaice.trained_is_champion"] == "false"
    assert f"optical_predict: models:/seaice-optical/1 ({champion})" in done.stdout
    assert f"the model trained now, {trained}, did not become champion" in done.stdout
