"""Optical training: crops whose labels follow the image, every segmentation architecture trains,
and `seaice optical train` tracks a run with checkpoints and the recipe."""

from __future__ import annotations

import json
import re
from dataclasses import fields

import mlflow
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from sklearn.metrics import jaccard_score

from seaice_mlflow.cli import cli
from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.core.metrics import confusion_matrix, head_score
from seaice_mlflow.core.tiling import Window
from seaice_mlflow.tasks.optical.config import (
    OPTICAL_INFERENCE,
    OpticalEvaluateDefaults,
    OpticalPredictDefaults,
    OpticalTrainDefaults,
)
from seaice_mlflow.tasks.optical.crops import HEAD, MEAN, STD, PhotoCrops, PhotoTiles
from seaice_mlflow.tasks.optical.labels import read_annotation_config
from seaice_mlflow.tasks.optical.logged_models import load_optical_models
from seaice_mlflow.tasks.optical.readers import open_folder, read_image, read_pair
from seaice_mlflow.tasks.optical.synthetic import synthesize_photos
from seaice_mlflow.tasks.optical.training import PhotoTraining

EXPERIMENT = "optical-train-test"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Six synthetic photos of 96 x 128 px in the PixelAnnotationTool layout."""
    out = tmp_path_factory.mktemp("photos")
    synthesize_photos(out, n_images=6, size=(96, 128), seed=4)
    return out


def test_crops_keep_the_label_under_the_image_and_repeat_by_index(tmp_path):
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[:, :40] = (250, 10, 10)  # left: class id 1 (red), right: id 2 (blue)
    rgb[:, 40:] = (10, 10, 250)
    ids = np.where(np.arange(80)[None, :] < 40, 1, 2).repeat(60, 0).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "cam.png")
    Image.fromarray(np.stack([ids] * 3, -1)).save(tmp_path / "cam_watershed_mask.png")
    config = {"labels": {n: {"categorie": n, "color": c, "id": i, "id_categorie": i, "name": n}
                         for n, c, i in (("red ice", [255, 0, 0], 1), ("blue water", [0, 0, 255], 2))}}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    folder = open_folder(tmp_path, val_fraction=0.0)
    crops = PhotoCrops(folder.photos, folder.table, 32, seed=3, augment=True)
    for index in range(8):
        sample = crops[index]
        red = sample["image"][0] * STD[0] + MEAN[0] > sample["image"][2] * STD[2] + MEAN[2]
        label = sample["ice"]
        assert set(torch.unique(label).tolist()) <= {0, 1}
        # index 0 is id 1 (red), whatever the crop and flip; the image is resized smoothly and the label
        # by nearest neighbour, so only the pixels next to the colour edge may disagree
        inside = torch.ones_like(red)
        inside[:, 1:-1] = (label[:, 1:-1] == label[:, :-2]) & (label[:, 1:-1] == label[:, 2:])
        assert torch.equal((label == 0)[inside], red[inside])
        assert torch.equal(crops[index]["image"], sample["image"])  # a pure function of (seed, index)
    assert not torch.equal(crops[0]["image"], crops[1]["image"])


@pytest.mark.parametrize("model", ["smp_unet", "pspnet", "deeplabv3plus", "upernet", "unet"])
def test_every_segmentation_architecture_trains_two_batches(model, photos, tmp_path):
    options = OpticalTrainDefaults(model=model, epochs=1, batches_per_epoch=2, batch_size=2, patch_size=64,
                                   workers=0, val_tile=128, device="cpu", out=str(tmp_path / "ckpt"))  # fmt: skip
    training = PhotoTraining.build(photos, options)
    assert training.task.head("ice").class_names == read_annotation_config(photos / "config.json").names
    state = training.trainer.fit()
    assert state.epoch == 1 and np.isfinite(state.history[0]["train_loss"])
    assert 0 <= state.history[0]["val_ice_miou"] <= 100 and (tmp_path / "ckpt" / "best.pt").is_file()


def test_the_validation_score_is_the_mean_iou_of_the_pooled_photos(photos, tmp_path):
    options = OpticalTrainDefaults(epochs=1, batches_per_epoch=1, batch_size=2, patch_size=64, workers=0,
                                   val_tile=64, device="cpu", out=str(tmp_path / "ckpt"))  # fmt: skip
    training = PhotoTraining.build(photos, options)
    scores = training.validate()
    references, predictions = [], []
    training.network.eval()
    for photo in training.validation_photos():
        rgb, label = read_pair(photo, training.folder.table)
        with torch.no_grad():
            x = torch.from_numpy(PhotoTiles(rgb).read(Window.full(label.shape)))
            predicted = training.network(x[None])["ice"].argmax(1)[0].numpy()
        keep = label != 255
        references.append(label[keep])
        predictions.append(predicted[keep])
    reference, prediction = np.concatenate(references), np.concatenate(predictions)
    expected = 100 * jaccard_score(reference, prediction, average="macro")
    assert scores.charts["ice"] == pytest.approx(expected, abs=0.01)
    assert head_score("miou", confusion_matrix(reference, prediction.astype(np.uint8))) == pytest.approx(
        expected, abs=1e-3
    )


@pytest.mark.slow
def test_seaice_optical_train_tracks_a_run_with_checkpoints_and_the_recipe(photos, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
    args = ["optical", "train", "--data-dir", str(photos), "--epochs", "2", "--batches-per-epoch", "2",
            "--batch-size", "2", "--patch-size", "64", "--workers", "0", "--device", "cpu",
            "--out", str(tmp_path / "c")]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    for epoch, left in ((1, r"\d+\.\d"), (2, "0.0")):  # a line per epoch with the time left, as `seaice train`
        assert re.search(rf"^epoch {epoch}/2  loss [\d.]+  val mIoU [\d.]+( best)?  [\d.]+ s  ETA {left} min$",
                         result.output, re.M), result.output  # fmt: skip
    run_id = re.search(r"^run (\w+): best val mIoU", result.output, re.M).group(1)
    mlflow.set_tracking_uri(uri)
    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["seaice.entry_point"] == "optical_train"
    assert run.data.params["model"] == "smp_unet" and run.data.metrics["epochs_trained"] == 2
    assert run.info.run_name == f"optical train smp_unet {photos.name}"
    assert "encoder" in run.data.params and not {"floe_classes", "min_floe_pixels"} & set(run.data.params)  # maskrcnn's
    assert "best_val_combined" in run.data.metrics
    history = mlflow.MlflowClient().get_metric_history(run_id, "val_ice_miou")
    assert [m.step for m in history] == [0, 1]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    assert {"recipe.json", "checkpoints"} <= artifacts
    recipe = mlflow.artifacts.load_dict(f"runs:/{run_id}/recipe.json")
    assert recipe["variables"] == ["red", "green", "blue"] and len(recipe["classes"]) == 10
    model_uri = re.search(r"model (models:/m-\w+)", result.output).group(1)
    assert run.data.tags["seaice.model_uri"] == model_uri
    photo = sorted(photos.glob("photo_*[0-9].png"))[0]
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    model = mlflow.pyfunc.load_model(model_uri, model_config={"device": "cpu", "tile": 96, "overlap": 48})
    masks = model.predict(np.stack([rgb, rgb]))["ice"]
    ids = [c["id"] for c in recipe["classes"]]
    assert masks.shape == (2, *rgb.shape[:2]) and masks.dtype == np.uint8 and set(np.unique(masks)) <= set(ids)
    # one tile covering the photo: exactly the network's own pass, the indices written as the table's ids
    model = mlflow.pyfunc.load_model(model_uri, model_config={"device": "cpu", "tile": 128, "overlap": 0})
    masks = model.predict(rgb[None])["ice"]
    photo_model = model.unwrap_python_model()
    with torch.no_grad():
        scores = photo_model.predictor.models[0](
            torch.from_numpy(PhotoTiles(rgb).read(Window.full(rgb.shape[:2])))[None]
        )
    whole = np.array(ids, np.uint8)[scores["ice"].argmax(1)[0].numpy()]
    assert np.array_equal(masks[0], whole)
    # at the inference defaults, a photo of 2 x 2 tiles: the blended tiles agree with one whole-photo pass
    big = read_image(synthesize_photos(tmp_path / "big", 1, (1152, 1280), seed=9)[0])
    photo_model, _ = load_optical_models(model_uri, "cpu")
    tiled, _ = photo_model.predict_photo(big)
    whole = photo_model.predictor.predict_whole(PhotoTiles(big, photo_model.recipe.mean, photo_model.recipe.std))
    options = photo_model.predictor.options
    assert (options.tile, options.overlap) == (OPTICAL_INFERENCE.tile, OPTICAL_INFERENCE.overlap) < big.shape[:2]
    assert np.mean(tiled == photo_model.ids[whole.charts[HEAD]]) >= 0.999


@pytest.mark.slow
def test_evaluate_scores_the_written_masks_as_sklearn_does_and_predict_writes_tool_masks(photos, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
    runner = CliRunner()
    trained = runner.invoke(cli, ["optical", "train", "--data-dir", str(photos), "--epochs", "1", "--batches-per-epoch",
                                  "3", "--batch-size", "2", "--patch-size", "64", "--workers", "0", "--device", "cpu",
                                  "--out", str(tmp_path / "c")])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    model_uri = re.search(r"model (models:/m-\w+)", trained.output).group(1)
    out = tmp_path / "masks"
    predicted = runner.invoke(cli, ["optical", "predict", "--model-uri", model_uri, "--images", str(photos), "--out",
                                    str(out), "--device", "cpu", "--tile", "64"])  # fmt: skip
    assert predicted.exit_code == 0, predicted.output
    stems = sorted(p.stem for p in photos.glob("*.png") if "_mask" not in p.name)
    for number, stem in enumerate(stems, start=1):  # a line per photo: which, its size, how long it took
        assert re.search(rf"^photo {number}/6 {stem}.png \(96x128 px\): [\d.]+ s, wrote .*{stem}_color_mask.png$",
                         predicted.output, re.M), predicted.output  # fmt: skip
    assert sorted(p.name for p in out.glob("*_color_mask.png")) == [f"{s}_color_mask.png" for s in stems]
    fractions = json.loads((out / "class_fractions.json").read_text())
    assert set(fractions) == {f"{s}.png" for s in stems}
    assert all(abs(sum(f.values()) - 100) < 0.1 for f in fractions.values())

    evaluated = runner.invoke(cli, ["optical", "evaluate", "--model-uri", model_uri, "--data-dir", str(photos),
                                    "--device", "cpu", "--tile", "64", "--json"])  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    scores = json.loads(evaluated.output[evaluated.output.index("{") :])
    folder = open_folder(photos)
    lookup = folder.table.index_lookup()
    references, predictions = [], []
    for photo in folder.photos:  # the written masks (label ids) against the labels, 255 ignored
        _, label = read_pair(photo, folder.table)
        written = lookup[np.asarray(Image.open(out / f"{photo.stem}_mask.png"))[..., 0]]
        keep = label != 255
        references.append(label[keep])
        predictions.append(written[keep])
    reference, prediction = np.concatenate(references), np.concatenate(predictions)
    assert scores["miou"] == pytest.approx(100 * jaccard_score(reference, prediction, average="macro"), abs=1e-3)
    assert scores["pixel_accuracy"] == pytest.approx(100 * float((reference == prediction).mean()), abs=1e-3)
    assert set(scores["per_class"]) == set(folder.table.names) and scores["photos"] == 6
    assert scores["miou_without_background"] != scores["miou"]  # sky is left out


@pytest.mark.parametrize(
    "option, value, problem",
    [
        ("--lr", "nan", "must be a finite number, got nan"),
        ("--lr", "-1", "must be > 0, got -1.0"),
        ("--lr", "0", "must be > 0, got 0.0"),
        ("--weight-decay", "nan", "must be a finite number, got nan"),
        ("--weight-decay", "-1", "must be >= 0, got -1.0"),
    ],
)
def test_optical_train_refuses_unusable_numbers_before_any_run(option, value, problem, photos, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
    args = ["optical", "train", "--data-dir", str(photos), "--epochs", "1", "--batches-per-epoch", "1",
            "--batch-size", "1", "--patch-size", "32", "--workers", "0", "--device", "cpu",
            "--out", str(tmp_path / "c"), option, value]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and f"option {option}: {problem}" in result.output, result.output
    assert isinstance(result.exception, SystemExit)  # a one-line error, not an exception's traceback
    assert not (tmp_path / "mlflow.db").exists()  # refused before MLflow was called: no run


@pytest.mark.parametrize("name", [f.name for f in fields(OpticalTrainDefaults) if isinstance(f.default, float)])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_every_float_option_of_optical_train_refuses_nan_and_inf(name, value):
    with pytest.raises(ParameterError, match=f"option --{name.replace('_', '-')}: must be a finite number"):
        OpticalTrainDefaults(**{name: value})


def test_optical_inference_options_are_checked_when_made():
    with pytest.raises(ParameterError, match="option --tile: must be >= 32, got 8"):
        OpticalPredictDefaults(tile=8)
    with pytest.raises(ParameterError, match="option --device: 'tpu' is not one of auto, cpu, cuda"):
        OpticalEvaluateDefaults(device="tpu")


@pytest.mark.parametrize("names", [("same.png", "same.jpg"), ("a/same.png", "b/same.png"), ("Same.png", "same.tif")])
def test_optical_predict_refuses_photos_whose_masks_would_share_a_name(names, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name in names:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / name)
    folders = sorted({str((tmp_path / name).parent) for name in names})
    out = tmp_path / "masks"
    result = CliRunner().invoke(cli, ["optical", "predict", "--model-uri", "models:/nothing/1", "--images",
                                      ",".join(folders), "--out", str(out)])  # fmt: skip
    first, second = (str(tmp_path / name) for name in names)
    assert result.exit_code == 1 and "option --images:" in result.output, result.output
    assert f"{first} and {second}" in result.output or f"{second} and {first}" in result.output
    assert "same_mask.png" in result.output.lower() and not out.exists()
    assert not (tmp_path / "mlflow.db").exists()  # refused before MLflow was called: no run


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: list[str], params=None) -> list[str]:
        return model_input


def test_optical_commands_refuse_other_models_and_missing_photos(tmp_path, monkeypatch):
    from seaice_mlflow.core.errors import ParameterError
    from seaice_mlflow.tasks.optical.logged_models import load_optical_models
    from seaice_mlflow.tasks.optical.steps.predict import photo_files

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment(EXPERIMENT)  # not the experiment an earlier test of this process left active
    with mlflow.start_run():
        other = mlflow.pyfunc.log_model(name="echo", python_model=Echo())
    with pytest.raises(ParameterError, match="option --model-uri: .* is not an optical model"):
        load_optical_models(other.model_uri)
    with pytest.raises(ParameterError, match="option --images: .*nowhere.png does not exist"):
        photo_files([tmp_path / "nowhere.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParameterError, match="option --images: no photo"):
        photo_files([tmp_path / "empty"])
