"""Models, their registry and the multi-task loss (CPU, small networks)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from seaice_mlflow.core.engine import decode
from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.core.losses import MultiTaskLoss, class_weights_from_histograms
from seaice_mlflow.models import ModelSpec, UNetOptions, build_model, spec_from_options
from seaice_mlflow.tasks.autoice.charts import AUTOICE, CHART_NAMES, CHARTS, IGNORE_INDEX, SIC_HEADS, autoice_task

#: MMSeaIce's task weights, the AutoICE task's default loss weights.
MMSEAICE_TASK_WEIGHTS = {"SIC": 1.0, "SOD": 3.0, "FLOE": 3.0}

C = 4


def small_spec(name: str, sic_head: str = "regression", **kwargs) -> ModelSpec:
    values = {"unet_filters": (8, 8, 16, 16), "deeplab_depth": 18, **kwargs}
    return spec_from_options(name, C, autoice_task(sic_head).outputs(), values)


def small_model(name: str, sic_head: str = "regression", **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return build_model(small_spec(name, sic_head, **kwargs))


def random_targets(n: int, h: int, w: int, ignore_fraction: float = 0.3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for chart in CHART_NAMES:
        t = torch.randint(0, CHARTS[chart].n_classes, (n, h, w), generator=g, dtype=torch.uint8)
        t[torch.rand(n, h, w, generator=g) < ignore_fraction] = IGNORE_INDEX
        out[chart] = t
    return out


def random_outputs(n: int, h: int, w: int, sic_head: str, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    channels = autoice_task(sic_head).outputs()
    return {c: (3 * torch.randn(n, k, h, w, generator=g)).requires_grad_() for c, k in channels.items()}


# --- models -------------------------------------------------------------------------------------


@pytest.mark.parametrize("sic_head", SIC_HEADS)
@pytest.mark.parametrize("name", ["unet", "deeplabv3"])
def test_forward_any_size_and_backward(name, sic_head):
    model = small_model(name, sic_head)
    assert model.stride == 16
    expected = small_spec(name, sic_head).outputs
    assert list(expected) == list(CHART_NAMES)
    assert expected["SIC"] == (1 if sic_head == "regression" else 11)
    # Batch norm needs more than one value per channel in training, so a tiny input goes
    # through in a batch of two (train) and alone (eval).
    cases = [((1, C, 37, 53), True), ((2, C, 64, 64), True), ((2, C, 5, 7), True), ((1, C, 5, 7), False)]
    for shape, train in cases:
        model.train(train)
        x = torch.randn(*shape, requires_grad=train)
        out = model(x)
        assert list(out) == list(CHART_NAMES)
        for chart, k in expected.items():
            assert out[chart].shape == (shape[0], k, *shape[2:]), (chart, shape)
        if train:
            sum(o.square().mean() for o in out.values()).backward()
            assert x.grad is not None and torch.isfinite(x.grad).all()
            assert all(p.grad is not None for p in model.parameters())
            model.zero_grad()


def test_unet_filters_and_levels():
    model = build_model(ModelSpec("unet", 3, AUTOICE.outputs(), UNetOptions((16, 32, 64, 64))))
    assert model.stride == 16
    assert model.inc[0].in_channels == 3 and model.inc[0].out_channels == 16
    assert [h.in_channels for h in model.heads.values()] == [16, 16, 16]
    assert build_model(ModelSpec("unet", 3, AUTOICE.outputs(), UNetOptions((4, 8)))).stride == 4


def test_deeplab_heads_pool_locally():
    model = small_model("deeplabv3")
    assert not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in model.modules())
    pools = [m for m in model.heads.modules() if isinstance(m, nn.AvgPool2d)]
    assert len(pools) == len(CHART_NAMES)
    assert all(p.kernel_size == 2 and p.stride == 2 and p.ceil_mode for p in pools)
    assert not hasattr(model.backbone, "layer4")
    assert model.backbone.conv1.in_channels == C


def test_deeplab_patch_matches_full_input():
    """Away from its borders a patch's output equals that part of the whole input's output.

    The input is only 4 features high (so the 12/24/36 atrous taps fall outside both inputs in
    that direction) and the patch differs in width only, with margins beyond the receptive field
    (backbone ~7 features, rate-36 taps, head 3x3 conv, pooling and upsampling: < 48 features).
    """
    model = small_model("deeplabv3").eval()
    torch.manual_seed(1)
    full = torch.randn(1, C, 64, 2048)
    start, width, margin = 128, 1792, 768  # the patch starts on the stride-16 grid
    with torch.no_grad():
        whole = model(full)
        patch = model(full[..., start : start + width])
    for chart in CHART_NAMES:
        expected = whole[chart][..., start + margin : start + width - margin]
        got = patch[chart][..., margin : width - margin]
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())

    # Negative control: torchvision's global pooling makes the patch see a different operator.
    for head in model.heads.values():
        head[0].convs[-1][0] = nn.AdaptiveAvgPool2d(1)
    with torch.no_grad():
        whole, patch = model(full)["SOD"], model(full[..., start : start + width])["SOD"]
    diff = (patch[..., margin : width - margin] - whole[..., start + margin : start + width - margin]).abs().max()
    assert diff > 1e-3 * whole.abs().max()


def test_pretrained_backbone(tmp_path):
    resnet = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pt"
    torch.save(resnet.state_dict(), path)
    model = build_model(small_spec("deeplabv3", pretrained=str(path)))
    rgb = resnet.conv1.weight.detach()
    expected = rgb.mean(dim=1, keepdim=True).repeat(1, C, 1, 1) * 3 / C
    torch.testing.assert_close(model.backbone.conv1.weight.detach(), expected)
    for name, value in resnet.layer1.state_dict().items():
        torch.testing.assert_close(model.backbone.layer1.state_dict()[name], value)
    torch.testing.assert_close(model.backbone.layer3[1].conv2.weight, resnet.layer3[1].conv2.weight)

    with pytest.raises(ParameterError, match="missing.pt"):
        build_model(small_spec("deeplabv3", pretrained=str(tmp_path / "missing.pt")))
    broken = tmp_path / "broken.pt"
    torch.save({k: v for k, v in resnet.state_dict().items() if not k.startswith("layer3.1.")}, broken)
    with pytest.raises(ParameterError, match="broken.pt.*does not fit"):
        build_model(small_spec("deeplabv3", pretrained=str(broken)))
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint")
    with pytest.raises(ParameterError, match="garbage.pt"):
        build_model(small_spec("deeplabv3", pretrained=str(garbage)))


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"name": "segformer"}, "unet, deeplabv3"),
        ({"sic_head": "ordinal"}, "regression, classification"),
        ({"name": "deeplabv3", "deeplab_depth": 42}, "18, 34, 50, 101, 152"),
        ({"name": "unet", "pretrained": "resnet.pt"}, "pretrained: is an option of deeplabv3, not of unet"),
        ({"in_channels": 0}, "positive integer"),
        ({"unet_filters": (8, 0)}, "unet-filters: must be positive integers"),
    ],
)
def test_build_model_errors(changes, match):
    given = {"name": "unet", "in_channels": C, "sic_head": "regression", **changes}
    with pytest.raises(ValueError, match=match):
        outputs = autoice_task(given.pop("sic_head")).outputs()
        build_model(spec_from_options(given.pop("name"), given.pop("in_channels"), outputs, given))


def test_spec_json_round_trip():
    spec = small_spec("unet", "classification")
    data = json.loads(json.dumps(spec.as_dict()))
    assert data["options"]["filters"] == [8, 8, 16, 16] and data["outputs"]["SIC"] == 11
    assert ModelSpec.from_dict(data) == spec
    deeplab = small_spec("deeplabv3")
    assert ModelSpec.from_dict(json.loads(json.dumps(deeplab.as_dict()))) == deeplab
    with pytest.raises(ValueError, match="colour"):
        ModelSpec.from_dict({**data, "colour": "red"})
    with pytest.raises(ValueError, match="unet has no options depth"):
        ModelSpec.from_dict({**data, "options": {"depth": 18}})


def test_decoded_classes():
    sic = np.array([-0.7, 3.4, 12.2, 9.5], np.float32).reshape(1, 1, 4)
    sod = np.zeros((6, 1, 4), np.float32)
    sod[[5, 0, 2, 3], 0, [0, 1, 2, 3]] = 1.0
    regressed = decode(autoice_task("regression").head("SIC"), sic)
    assert regressed.dtype == np.uint8 and regressed.shape == (1, 4)
    assert regressed.flatten().tolist() == [0, 3, 10, 10]
    assert decode(AUTOICE.head("SOD"), sod).flatten().tolist() == [5, 0, 2, 3]
    logits = np.random.default_rng(0).standard_normal((11, 3, 5)).astype(np.float32)
    classified = decode(autoice_task("classification").head("SIC"), logits)
    assert np.array_equal(classified, logits.argmax(0).astype(np.uint8))


# --- loss ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("sic_head", SIC_HEADS)
def test_ignored_pixels_do_not_count(sic_head):
    loss_fn = MultiTaskLoss(autoice_task(sic_head), focal_gamma=2.0 if sic_head == "classification" else 0.0)
    targets = random_targets(2, 6, 7)
    outputs = random_outputs(2, 6, 7, sic_head)
    total, parts = loss_fn(outputs, targets)
    changed = {}
    for chart, out in outputs.items():
        ignored = (targets[chart] == IGNORE_INDEX).unsqueeze(1).expand_as(out)
        changed[chart] = torch.where(ignored, 100 * torch.randn_like(out), out.detach())
    total2, parts2 = loss_fn(changed, targets)
    torch.testing.assert_close(total2, total.detach())
    for chart in CHART_NAMES:
        torch.testing.assert_close(parts2[chart], parts[chart])
        assert not parts[chart].requires_grad
    expected = sum(MMSEAICE_TASK_WEIGHTS[c] * parts[c] for c in CHART_NAMES)
    torch.testing.assert_close(total.detach(), expected)


@pytest.mark.parametrize("sic_head", SIC_HEADS)
def test_all_ignored_batch_is_zero_with_finite_gradients(sic_head):
    weights = {"SOD": torch.ones(6), "SIC": torch.ones(11)}
    loss_fn = MultiTaskLoss(autoice_task(sic_head), class_weights=weights, focal_gamma=0.5)
    targets = {c: torch.full((2, 4, 4), IGNORE_INDEX, dtype=torch.uint8) for c in CHART_NAMES}
    outputs = random_outputs(2, 4, 4, sic_head)
    total, parts = loss_fn(outputs, targets)
    assert total.item() == 0.0 and all(p.item() == 0.0 for p in parts.values())
    total.backward()
    for out in outputs.values():
        assert out.grad is not None and torch.isfinite(out.grad).all() and not out.grad.any()


def test_focal_gamma_zero_is_cross_entropy_and_weights_matter():
    targets = random_targets(2, 5, 6, seed=3)
    outputs = random_outputs(2, 5, 6, "classification", seed=4)
    _, parts = MultiTaskLoss(autoice_task("classification"), focal_gamma=0.0)(outputs, targets)
    for chart in CHART_NAMES:
        expected = F.cross_entropy(outputs[chart], targets[chart].long(), ignore_index=IGNORE_INDEX)
        torch.testing.assert_close(parts[chart], expected.detach())
    _, focal = MultiTaskLoss(autoice_task("classification"), focal_gamma=2.0)(outputs, targets)
    assert all(focal[c] < parts[c] for c in CHART_NAMES)

    w = torch.linspace(0.2, 3.0, 6)
    _, weighted = MultiTaskLoss(autoice_task("classification"), class_weights={"SOD": w})(outputs, targets)
    expected = F.cross_entropy(outputs["SOD"], targets["SOD"].long(), weight=w, ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(weighted["SOD"], expected.detach())
    assert not torch.isclose(weighted["SOD"], parts["SOD"])
    torch.testing.assert_close(weighted["FLOE"], parts["FLOE"])


def test_regression_loss_is_masked_mse():
    targets = random_targets(2, 5, 6, seed=5)
    outputs = random_outputs(2, 5, 6, "regression", seed=6)
    _, parts = MultiTaskLoss(AUTOICE)(outputs, targets)
    valid = targets["SIC"] != IGNORE_INDEX
    pred = outputs["SIC"][:, 0].detach()[valid]
    expected = ((pred - targets["SIC"][valid].float()) ** 2).mean()
    torch.testing.assert_close(parts["SIC"], expected)


def test_loss_argument_errors():
    with pytest.raises(ValueError, match="regression, classification"):
        MultiTaskLoss(autoice_task("ordinal"))
    with pytest.raises(ValueError, match="6 values"):
        MultiTaskLoss(AUTOICE, class_weights={"SOD": torch.ones(5)})
    with pytest.raises(ValueError, match="unknown heads"):
        MultiTaskLoss(AUTOICE, task_weights={"SIT": 1.0})


def test_class_weights_from_histograms():
    histograms = {"SOD": [900, 100, 0, 25, 400, 100, 5000], "FLOE": [1, 1, 1, 1, 1, 1, 1, 0]}
    weights = class_weights_from_histograms(AUTOICE, histograms, power=0.5)
    sod = weights["SOD"]
    assert sod.shape == (6,) and sod[2] == 0
    present = sod[sod > 0]
    torch.testing.assert_close(present.mean(), torch.tensor(1.0))
    assert sod[3] / sod[0] == pytest.approx((900 / 25) ** 0.5, rel=1e-5)
    torch.testing.assert_close(weights["FLOE"], torch.ones(7))
    with pytest.raises(ValueError, match="masked count"):
        class_weights_from_histograms(AUTOICE, {"SOD": [1] * 6})
