"""Training speed on this machine: patches/s of one optimisation step per model at patch 256.

Times forward + loss + backward + AdamW step on random batches (the patch loader has its own
benchmark, bench_loader.py), after warm-up steps, for each model of the registry with the
training defaults (U-Net 32,32,64,64; DeepLabV3 on a truncated ResNet-152 and, for scale,
ResNet-50), 29 input channels (all 24 inputs + 5 encodings), inputs in channels_last as the
trainer feeds them (the U-Net once more with NCHW inputs, for the ratio).

    python benchmarks/bench_train.py [--batch-size 16] [--steps 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch

from seaice_mlflow.core.losses import MultiTaskLoss
from seaice_mlflow.models import ModelSpec, build_model, spec_from_options
from seaice_mlflow.tasks.autoice.charts import AUTOICE, CHART_NAMES, CHARTS
from seaice_mlflow.tasks.autoice.config import TRAIN
from seaice_mlflow.tasks.autoice.train_config import TrainConfig

#: label -> (architecture, its options as training options, channels_last input as the trainer feeds it)
CASES = {
    "unet (32,32,64,64)": ("unet", {}, True),
    "unet (32,32,64,64), NCHW input": ("unet", {}, False),
    "unet (16,32,64,64), starter pack": ("unet", {"unet_filters": (16, 32, 64, 64)}, True),
    "deeplabv3 resnet152 (default)": ("deeplabv3", {"deeplab_depth": 152}, True),
    "deeplabv3 resnet50": ("deeplabv3", {"deeplab_depth": 50}, True),
}


def step_time(
    spec: ModelSpec, batch: int, patch: int, steps: int, device: torch.device, channels_last: bool = True
) -> float:
    """Seconds per training step (mean over ``steps`` after two warm-up steps)."""
    torch.manual_seed(0)
    model = build_model(spec).to(device).train()
    loss_fn = MultiTaskLoss(AUTOICE)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, spec.in_channels, patch, patch, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    targets = {c: torch.randint(0, CHARTS[c].n_classes, (batch, patch, patch), device=device) for c in CHART_NAMES}
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    for i in range(steps + 2):
        if i == 2:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            outputs = model(x)
        loss, _ = loss_fn({c: o.float() for c, o in outputs.items()}, targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=TRAIN.batch_size)
    parser.add_argument("--patch-size", type=int, default=TRAIN.patch_size)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    channels = len(TrainConfig().input_variables)
    print(
        f"training step, batch {args.batch_size} x {channels} channels x {args.patch_size}^2, "
        f"{device}, {torch.get_num_threads()} threads"
    )
    for label, (arch, options, channels_last) in CASES.items():
        spec = spec_from_options(arch, channels, AUTOICE.outputs(), options)
        seconds = step_time(spec, args.batch_size, args.patch_size, args.steps, device, channels_last)
        print(f"  {label:<36} {args.batch_size / seconds:8.1f} patches/s   ({seconds:6.2f} s/step)")


if __name__ == "__main__":
    main()
