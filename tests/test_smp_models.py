"""segmentation_models_pytorch architectures in the registry: one head per task head, any input
size, local encoder weights, and two training batches through the same trainer."""

from __future__ import annotations

import pytest
import torch

from seaice_mlflow.core.errors import ModelSpecError, ParameterError
from seaice_mlflow.models import build_model, init_output_bias, load_trained, spec_from_options
from seaice_mlflow.models.segmentation import SMP_ARCHITECTURES
from seaice_mlflow.tasks.autoice.charts import AUTOICE
from seaice_mlflow.tasks.autoice.train_config import TrainConfig
from seaice_mlflow.tasks.autoice.training import ChartTraining


@pytest.mark.parametrize("arch", sorted(SMP_ARCHITECTURES))
def test_every_smp_architecture_gives_each_head_at_any_size_and_trains_two_batches(arch, train_store, tmp_path):
    network = build_model(spec_from_options(arch, 5, AUTOICE.outputs(), {"encoder": "resnet18"})).eval()
    with torch.no_grad():
        out = network(torch.randn(1, 5, 70, 90))
    assert {h: tuple(v.shape) for h, v in out.items()} == {h: (1, k, 70, 90) for h, k in AUTOICE.outputs().items()}
    init_output_bias(network, "SIC", 4.0)  # each head ends in a convolution with a bias
    assert torch.all(network.heads["SIC"][0].bias == 4.0)
    config = TrainConfig(store=str(train_store), out=str(tmp_path / "ckpt"), model=arch, encoder="resnet18",
                         epochs=1, batches_per_epoch=2, batch_size=2, patch_size=64, workers=0, val_tile=64,
                         device="cpu")  # fmt: skip
    state = ChartTraining.build(config).fit()
    assert state.epoch == 1 and torch.isfinite(torch.tensor(state.history[0]["train_loss"]))


def test_an_unknown_encoder_and_a_foreign_weight_file_name_their_options(tmp_path):
    with pytest.raises(ModelSpecError, match="option --encoder: 'resnet7' is not an encoder"):
        build_model(spec_from_options("upernet", 3, {"ice": 4}, {"encoder": "resnet7"}))
    source = build_model(spec_from_options("smp_unet", 3, {"ice": 4}, {"encoder": "resnet18"}))
    torch.save(source.encoder.state_dict(), tmp_path / "encoder.pt")
    weights = {"encoder": "resnet18", "pretrained": str(tmp_path / "encoder.pt")}
    loaded = build_model(spec_from_options("pspnet", 3, {"ice": 4}, weights))
    assert torch.equal(loaded.encoder.layer1[0].conv1.weight, source.encoder.layer1[0].conv1.weight)
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ParameterError, match="option --pretrained: .*fits 0 of the resnet18 encoder's"):
        build_model(spec_from_options("pspnet", 3, {"ice": 4}, {**weights, "pretrained": str(tmp_path / "other.pt")}))


def test_a_trained_model_loads_without_its_pretrained_file(tmp_path):
    source = build_model(spec_from_options("smp_unet", 3, {"ice": 4}, {"encoder": "resnet18"}))
    torch.save(source.encoder.state_dict(), tmp_path / "encoder.pt")
    weights = {"encoder": "resnet18", "pretrained": str(tmp_path / "encoder.pt")}
    spec = spec_from_options("pspnet", 3, {"ice": 4}, weights)
    trained = build_model(spec).state_dict()
    (tmp_path / "encoder.pt").unlink()  # the weights file of the training is gone where the model is used
    loaded = load_trained(spec, trained)
    assert not loaded.training and all(torch.equal(v, trained[k]) for k, v in loaded.state_dict().items())
