"""Ice floes one by one: instances from semantic labels, floe sizes, detection scores, the trainer's
objective path, and `seaice optical train --model maskrcnn` logging a floe model."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace

import mlflow
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torchvision.models.detection.roi_heads import paste_masks_in_image

from seaice_mlflow.cli import cli
from seaice_mlflow.core.errors import ParameterError, SeaIceError
from seaice_mlflow.core.trainer import LoopSettings, Trainer, TrainingParts
from seaice_mlflow.models import ModelSpec, build_model
from seaice_mlflow.models import spec as model_spec
from seaice_mlflow.models.detection import FLOE_OUTPUTS, FloeNetOptions, paste_masks
from seaice_mlflow.tasks.optical.crops import PhotoCrops
from seaice_mlflow.tasks.optical.floes.instances import (
    compact_instances,
    detected_instances,
    floe_class_indices,
    floe_instances,
    instance_targets,
)
from seaice_mlflow.tasks.optical.floes.products import read_floes, write_floe_sizes, write_floes
from seaice_mlflow.tasks.optical.floes.scores import FloeBoard, match_floes
from seaice_mlflow.tasks.optical.floes.sizes import DIAMETER_EDGES, FloeSizes, size_distribution
from seaice_mlflow.tasks.optical.floes.training import FloeCrops
from seaice_mlflow.tasks.optical.labels import ClassTable, PhotoClass
from seaice_mlflow.tasks.optical.readers import open_folder
from seaice_mlflow.tasks.optical.synthetic import synthesize_photos

EXPERIMENT = "optical-floes-test"
WATER, FLOE, LEVEL = 0, 1, 2  # class indices of the hand-written masks
TABLE = ClassTable((PhotoClass(1, "open water", (0, 0, 255)), PhotoClass(2, "Ice floe", (255, 200, 0)),
                    PhotoClass(3, "level ice", (230, 230, 230))))  # fmt: skip


@dataclass(frozen=True)
class TinyFloeNetOptions(FloeNetOptions):
    """maskrcnn small enough to train in seconds on two CPU cores."""

    min_size: int = 64
    max_size: int = 128
    rois_per_image: int = 16
    max_floes: int = 20


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Four synthetic photos of 96 x 128 px (three to train, with and without floes; one to validate)."""
    out = tmp_path_factory.mktemp("floe_photos")
    synthesize_photos(out, n_images=4, size=(96, 128), seed=4)
    return out


def hand_mask() -> np.ndarray:
    """Two floes touching along a watershed boundary (255), a speck, a floe touching another only at a
    corner, and level ice (not a floe class) next to them."""
    classes = np.full((20, 24), WATER, np.uint8)
    classes[2:10, 2:16] = FLOE
    classes[2:10, 9] = 255  # the boundary the tool draws between the two touching floes
    classes[15, 2:4] = FLOE  # a speck of two pixels
    classes[12:16, 10:14] = FLOE
    classes[16:19, 14:17] = FLOE  # touches the floe above only at its corner (12..15, 10..13)
    classes[12:19, 18:23] = LEVEL
    return classes


def test_floes_are_the_4_connected_regions_of_the_floe_classes():
    found = floe_instances(hand_mask(), [FLOE], min_pixels=1)
    assert found.dtype == np.int32 and found.max() == 5
    assert len(np.unique(found[2:10, 2:9])) == 1 and len(np.unique(found[2:10, 10:16])) == 1
    assert found[2, 2] != found[2, 10] and found[2, 9] == 0  # separated at the boundary
    assert found[15, 10] != found[16, 14]  # corners do not connect
    big = floe_instances(hand_mask(), [FLOE], min_pixels=5)
    assert big.max() == 4 and big[15, 2] == 0  # the speck is left out, the others renumbered 1..4
    assert set(np.unique(big)) == {0, 1, 2, 3, 4}
    assert not floe_instances(hand_mask(), [FLOE])[12:19, 18:23].any()  # level ice is no floe
    assert floe_instances(hand_mask(), [FLOE, LEVEL]).max() == 6


def test_floe_classes_are_named_case_insensitively_and_unknown_names_refused():
    assert floe_class_indices(TABLE, "ice floe") == (FLOE,)
    assert floe_class_indices(TABLE, " level ice, Ice Floe ") == (FLOE, LEVEL)
    with pytest.raises(ParameterError, match="option --floe-classes: 'pancake' not in the class table .*"
                       "its classes are open water, Ice floe, level ice"):  # fmt: skip
        floe_class_indices(TABLE, "ice floe,pancake")
    with pytest.raises(ParameterError, match="--floe-classes: names no class"):
        floe_class_indices(TABLE, " , ")


def test_instance_targets_are_what_torchvision_takes_with_zero_floes_too():
    found = floe_instances(hand_mask(), [FLOE], min_pixels=5)
    targets = instance_targets(found)
    assert targets["boxes"].dtype == np.float32 and targets["boxes"].shape == (4, 4)
    assert targets["labels"].dtype == np.int64 and targets["labels"].tolist() == [1, 1, 1, 1]
    assert targets["masks"].dtype == np.uint8 and targets["masks"].shape == (4, 20, 24)
    assert targets["boxes"][0].tolist() == [2, 2, 9, 10]  # xyxy, right and lower edges exclusive
    assert np.array_equal(targets["masks"].argmax(0) + 1, np.where(found > 0, found, 1))
    empty = instance_targets(np.zeros((8, 6), np.int32))
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,) and empty["masks"].shape == (0, 8, 6)
    ids = np.array([[0, 7, 7], [3, 0, 9]])
    assert compact_instances(ids).tolist() == [[0, 2, 2], [1, 0, 3]]
    assert compact_instances(ids, min_pixels=2).tolist() == [[0, 1, 1], [0, 0, 0]]


def test_sizes_of_a_square_and_a_disc_and_their_distribution():
    instance_map = np.zeros((100, 120), np.int32)
    instance_map[10:20, 10:20] = 1  # 100 px
    y, x = np.mgrid[0:100, 0:120]
    instance_map[(y - 60) ** 2 + (x - 70) ** 2 <= 20**2] = 2  # a disc of radius 20
    sizes = FloeSizes.of(instance_map)
    assert sizes.ids.tolist() == [1, 2] and sizes.area_px[0] == 100
    assert sizes.diameter_px[0] == pytest.approx(2 * math.sqrt(100 / math.pi))
    assert sizes.diameter_px[1] == pytest.approx(40, rel=0.01)
    distribution = size_distribution(instance_map)
    assert distribution.floes == 2 and len(distribution.counts) == len(DIAMETER_EDGES) - 1
    assert distribution.floe_area_share == pytest.approx(100 * sizes.area_px.sum() / instance_map.size, abs=1e-3)
    square_bin = int(np.searchsorted(DIAMETER_EDGES, sizes.diameter_px[0], side="right")) - 1
    assert distribution.counts[square_bin] == 1 and sum(distribution.counts) == 2
    assert sum(distribution.area_shares) == pytest.approx(100, abs=0.01)
    assert distribution.area_shares[square_bin] == pytest.approx(100 * 100 / sizes.area_px.sum(), abs=1e-3)
    as_json = json.loads(json.dumps(distribution.as_dict()))
    assert len(as_json["diameter_edges_px"]) == len(as_json["counts"]) + 1 and as_json["floes"] == 2
    none = size_distribution(np.zeros((4, 4), np.int32))
    assert none.floes == 0 and none.as_dict()["median_diameter_px"] is None and sum(none.area_shares) == 0


def test_detection_scores_match_floes_one_to_one_at_iou_one_half():
    reference = floe_instances(hand_mask(), [FLOE], min_pixels=5)  # 4 floes
    board = FloeBoard()
    board.add("perfect", reference, reference * 3)  # other ids, same floes
    perfect = board.pooled()
    assert (perfect.f1, perfect.precision, perfect.recall, perfect.matched_iou) == (100, 100, 100, 100)
    missed = np.where(reference == 2, 0, reference)  # one floe of the photo missed
    scores = FloeBoard()
    scores.add("missed", reference, missed)
    pooled = scores.pooled()
    assert pooled.recall == pytest.approx(75) and pooled.precision == 100 and pooled.f1 == pytest.approx(85.714)
    assert pooled.combined == pooled.f1
    assert set(pooled.metrics("val")) == {"val_floe_f1", "val_floe_precision", "val_floe_recall",
                                          "val_floe_matched_iou", "val_combined"}  # fmt: skip
    half = reference.copy()
    half[2:10, 2:5] = 0  # floe 1 keeps 4 of its 7 columns: IoU 4/7 matches; 3 of 7 would not
    assert match_floes(reference, half).matched == 4
    half[2:10, 2:6] = 0
    assert match_floes(reference, half).matched == 3
    # unlabelled reference pixels count for neither: a prediction over the boundary still matches exactly
    merged = np.where(hand_mask() == 255, 1, reference)
    match = match_floes(reference, merged, ignore=hand_mask() == 255)
    assert match.matched == 4 and match.ious.min() == 1
    assert FloeBoard().pooled().f1 == 100 and math.isnan(FloeBoard().pooled().matched_iou)


def test_detections_become_an_instance_map_the_best_keeping_shared_pixels():
    shape = (10, 12)
    window = (slice(1, 5), slice(2, 8))
    masks = [np.ones((4, 6), bool), np.ones((4, 6), bool), np.ones((2, 2), bool), np.ones((1, 1), bool)]
    windows = [window, (slice(3, 7), slice(4, 10)), (slice(8, 10), slice(0, 2)), (slice(0, 1), slice(0, 1))]
    found, scores = detected_instances(list(zip(windows, masks)), [0.6, 0.9, 0.3, 0.8], shape, 0.5, min_pixels=2)
    assert scores.tolist() == pytest.approx([0.9, 0.6])  # 0.3 below the threshold, the 1-px floe too small
    assert found[3, 5] == 1 and found[1, 2] == 2 and found[9, 0] == 0 and found[0, 0] == 0
    assert (found == 2).sum() == 24 - 8  # the overlap went to the better detection


def test_masks_are_pasted_as_torchvision_pastes_them_box_by_box():
    torch.manual_seed(0)
    masks = torch.rand(3, 28, 28)
    boxes = torch.tensor([[3.2, 4.7, 40.1, 30.0], [-5.0, 10.0, 20.0, 70.0], [50.0, 0.0, 64.0, 9.5]])
    full = paste_masks_in_image(masks[:, None], boxes, (60, 64))[:, 0] >= 0.5
    for k, (window, inside) in enumerate(paste_masks(masks, boxes, (60, 64))):
        pasted = torch.zeros(60, 64, dtype=torch.bool)
        pasted[window] = inside
        assert torch.equal(pasted, full[k])


def test_detect_gives_torchvisions_detections_with_masks_pasted_box_by_box():
    torch.manual_seed(1)
    network = build_model(ModelSpec("maskrcnn", 3, FLOE_OUTPUTS, TinyFloeNetOptions())).eval()
    image = torch.randn(3, 72, 100)
    with torch.no_grad():
        expected = network([image])[0]
    found = network.detect([image])[0]
    assert len(expected["scores"]) > 0 and torch.equal(found["scores"], expected["scores"])
    assert torch.allclose(found["boxes"], expected["boxes"], atol=1e-4)
    for k, (window, inside) in enumerate(paste_masks(found["masks"], found["boxes"], (72, 100))):
        pasted = torch.zeros(72, 100, dtype=torch.bool)
        pasted[window] = inside
        assert torch.equal(pasted, expected["masks"][k, 0] >= 0.5)


def test_floe_products_are_a_16_bit_png_json_and_csv(tmp_path):
    found = floe_instances(hand_mask(), [FLOE], min_pixels=5)
    record = write_floes(found, tmp_path, "cam", scores=np.array([0.9, 0.8, 0.7, 0.6]), photo="cam.jpg")
    assert record.path == tmp_path / "cam_floes.png" and np.array_equal(read_floes(record.path), found)
    many = write_floes(found * 16000, tmp_path / "many", "cam")  # ids beyond 8 bits
    assert Image.open(many.path).mode.startswith("I;16") and np.array_equal(read_floes(many.path), found * 16000)
    with pytest.raises(SeaIceError, match="do not fit a 16-bit PNG"):
        write_floes(found * 17000, tmp_path / "too_many", "cam")
    empty = write_floes(np.zeros((5, 5), np.int32), tmp_path, "none")
    paths = write_floe_sizes([record, empty], tmp_path)
    sizes = json.loads(paths[0].read_text())
    assert set(sizes) == {"cam.jpg", "none"} and sizes["cam.jpg"]["floes"] == 4 and sizes["none"]["floes"] == 0
    lines = paths[1].read_text().splitlines()
    assert lines[0] == "photo,floe,area_px,diameter_px,score" and len(lines) == 5
    assert lines[1] == "cam.jpg,1,56,8.444,0.9" and lines[4].endswith(",0.6")
    assert not list(tmp_path.glob(".*"))  # no temporary file left
    write_floe_sizes([empty], tmp_path / "no_floes")
    assert (tmp_path / "no_floes" / "floe_sizes.csv").read_text() == "photo,floe,area_px,diameter_px,score\n"


def test_floe_crops_are_the_photo_crops_with_the_floes_of_the_full_photo(photos):
    folder = open_folder(photos)
    indices = floe_class_indices(folder.table, "ice floe")
    train = folder.split("train")
    crops = FloeCrops(train, folder.table, 48, indices, min_pixels=1, seed=2)
    plain = PhotoCrops(train, folder.table, 48, seed=2)
    seen = 0
    for index in range(6):
        sample, same = crops[index], plain[index]
        assert torch.equal(sample["image"], same["image"]) and torch.equal(sample["ice"], same["ice"])
        floes = sample["floes"]
        assert floes.dtype == torch.int32 and floes.shape == (48, 48)
        inside = floes > 0
        assert torch.isin(sample["ice"][inside].long(), torch.tensor(indices)).all()  # floes lie on floe classes
        seen += int(inside.any())
    assert seen  # some crops hold floes


class Toy(torch.nn.Module):
    """A network computing its own loss from the batch, as torchvision's detectors do."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, image, targets):
        return {"fit": ((image.mean((1, 2, 3)) * self.scale - targets) ** 2).mean(), "size": self.scale.abs() * 0.1}


class ToyLoader:
    def epoch(self, epoch, batches, skip=0, rank=0, world=1):
        for b in range(batches):  # no target per head: the objective reads "wanted"
            yield {"image": torch.full((2, 3, 4, 4), 1.0 + b), "wanted": torch.tensor([0.5, 0.5])}


def test_the_loop_trains_a_network_that_computes_its_own_losses(tmp_path):
    network = Toy()

    def objective(model, image, batch):
        losses = model(image, batch["wanted"])
        return sum(losses.values()), losses

    optimizer = torch.optim.SGD(network.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=2)
    parts = TrainingParts(network, torch.nn.Identity(), optimizer, scheduler, ToyLoader(), ("fit", "size"),
                          objective=objective)  # fmt: skip
    settings = LoopSettings(out=tmp_path, epochs=2, batches_per_epoch=2, batch_size=2, grad_clip=1.0)
    state = Trainer(parts, settings, torch.device("cpu")).fit()
    first, last = state.history
    assert {"train_loss", "train_loss_fit", "train_loss_size"} <= set(first)
    assert first["train_loss"] == pytest.approx(first["train_loss_fit"] + first["train_loss_size"])
    assert last["train_loss"] < first["train_loss"] and (tmp_path / "best.pt").is_file()


@pytest.mark.slow
def test_seaice_optical_train_trains_maskrcnn_and_logs_a_floe_model(photos, tmp_path, monkeypatch):
    entries = model_spec.architectures()
    tiny = replace(entries["maskrcnn"], options=TinyFloeNetOptions)
    monkeypatch.setattr(model_spec, "architectures", lambda: {**entries, "maskrcnn": tiny})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(EXPERIMENT)
    args = ["optical", "train", "--data-dir", str(photos), "--model", "maskrcnn", "--encoder", "resnet18",
            "--epochs", "1", "--batches-per-epoch", "2", "--batch-size", "2", "--patch-size", "64",
            "--min-floe-pixels", "4", "--workers", "0", "--device", "cpu", "--out", str(tmp_path / "c")]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    run_id = re.search(r"^run (\w+):", result.output, re.M).group(1)
    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["seaice.product"] == "floes"
    assert run.data.tags["seaice.task"] == "optical" and run.data.params["floe_classes"] == "ice floe"
    metrics = run.data.metrics
    assert {"train_loss_mask", "train_loss_classifier", "val_floe_f1", "val_floe_recall", "best_val_combined"} <= set(
        metrics
    )
    assert 0 <= metrics["val_floe_f1"] <= 100 and metrics["epochs_trained"] == 1
    recipe = mlflow.artifacts.load_dict(f"runs:/{run_id}/recipe.json")
    assert recipe["model"]["arch"] == "maskrcnn" and recipe["floe_classes"] == ["ice floe"]
    assert recipe["model"]["options"]["min_size"] == 64 and recipe["min_floe_pixels"] == 4
    assert len(recipe["photos"]) == 4  # the digests of the training and validation photos
    model_uri = run.data.tags["seaice.model_uri"]
    assert mlflow.get_logged_model(model_uri.removeprefix("models:/")).tags["seaice.task"] == "optical_floes"
    model = mlflow.pyfunc.load_model(model_uri, model_config={"device": "cpu"})
    rgb = np.asarray(Image.open(sorted(photos.glob("photo_*[0-9].png"))[0]).convert("RGB"))
    floes = model.predict(rgb[None])["floes"]
    assert floes.shape == (1, *rgb.shape[:2]) and floes.dtype == np.int32 and floes.min() >= 0
    found, scores = model.unwrap_python_model().predict_photo(rgb)
    assert np.array_equal(found, floes[0]) and len(scores) == found.max()

    out = tmp_path / "floes"  # predict: instance PNGs and the floe sizes of every photo
    done = CliRunner().invoke(cli, ["optical", "predict", "--model-uri", model_uri, "--images", str(photos),
                                    "--out", str(out), "--device", "cpu"])  # fmt: skip
    assert done.exit_code == 0, done.output
    stems = sorted(p.stem for p in photos.glob("photo_*[0-9].png"))
    assert sorted(p.name for p in out.glob("*_floes.png")) == [f"{s}_floes.png" for s in stems]
    sizes = json.loads((out / "floe_sizes.json").read_text())
    assert set(sizes) == {f"{s}.png" for s in stems} and (out / "floe_sizes.csv").is_file()
    assert np.array_equal(read_floes(out / f"{stems[0]}_floes.png"), found)
    done = CliRunner().invoke(
        cli, ["optical", "evaluate", "--model-uri", model_uri, "--data-dir", str(photos), "--device", "cpu", "--json"]
    )  # evaluate: floe F1 on the labels' floes
    assert done.exit_code == 0, done.output
    scores = json.loads(done.output[done.output.index("{") :])
    assert {"f1", "precision", "recall", "matched", "reference"} <= set(scores) and scores["photos"] == 4
    [evaluated] = mlflow.search_runs(filter_string="tags.`seaice.entry_point` = 'optical_evaluate'",
                                     output_format="list")  # fmt: skip
    assert evaluated.data.metrics["test_combined"] == evaluated.data.metrics["test_floe_f1"] == scores["f1"]


def test_seaice_train_refuses_the_floe_detector_before_any_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    result = CliRunner().invoke(cli, ["train", "--store", str(tmp_path), "--model", "maskrcnn"])
    assert result.exit_code == 1
    assert "option --model: maskrcnn is an instance model of photos: train it with `seaice optical train`" in (
        result.output
    )
    assert not (tmp_path / "mlflow.db").exists()
