"""segmentation_models_pytorch's architectures as chart networks: U-Net, PSPNet, DeepLabV3+, UPerNet.

Registry names ``smp_unet``, ``pspnet``, ``deeplabv3plus`` and ``upernet``, with any of the
library's encoders (``--encoder``, default ``resnet34``) and random initialisation: weights cannot
be downloaded here, so ``encoder_weights`` is never asked of the library; ``pretrained`` loads a
local state dict of the encoder instead. The library's single segmentation head is replaced by one
per task head, the same convolution and upsampling with that head's channels, so a multi-head
task (the SAR charts) and a one-head task (photo masks) build alike and every head ends in a
convolution with a bias, as :class:`~seaice_mlflow.models.spec.Network` asks. Inputs are
zero-padded to a multiple of 32 (the encoders' output stride) and the outputs cropped back.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from torch import Tensor, nn

from seaice_mlflow.core.errors import ModelSpecError
from seaice_mlflow.models.options import SMP_ARCHITECTURES, SmpOptions
from seaice_mlflow.models.unet import pad_to_multiple
from seaice_mlflow.models.weights import load_fitting

#: Inputs are padded to a multiple of this (every encoder's deepest feature is 1/32).
SMP_STRIDE = 32


def encoder_names() -> list[str]:
    import segmentation_models_pytorch as smp  # imports timm and huggingface_hub: seconds

    return sorted(smp.encoders.get_encoder_names())


class SmpNetwork(nn.Module):
    """A segmentation_models_pytorch model with one segmentation head per task head."""

    stride = SMP_STRIDE

    def __init__(self, arch: str, in_channels: int, outputs: Mapping[str, int], options: SmpOptions):
        super().__init__()
        import segmentation_models_pytorch as smp

        if options.encoder not in smp.encoders.get_encoder_names():
            raise ModelSpecError("encoder", f"{options.encoder!r} is not an encoder of segmentation_models_pytorch "
                                 "(e.g. resnet18, resnet34, resnet50, efficientnet-b0, mit_b0)")  # fmt: skip
        model = smp.create_model(SMP_ARCHITECTURES[arch], encoder_name=options.encoder, encoder_weights=None,
                                 in_channels=in_channels, classes=1)  # fmt: skip
        if options.pretrained:
            load_fitting(model.encoder, options.pretrained, f"{options.encoder} encoder")
        self.encoder, self.decoder = model.encoder, model.decoder
        conv, upsample = model.segmentation_head[0], model.segmentation_head[1]
        self.heads = nn.ModuleDict(
            {head: nn.Sequential(nn.Conv2d(conv.in_channels, k, conv.kernel_size, padding=conv.padding),
                                 copy.deepcopy(upsample)) for head, k in outputs.items()}
        )  # fmt: skip

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h, w = x.shape[-2:]
        decoded = self.decoder(self.encoder(pad_to_multiple(x, self.stride)))
        return {name: head(decoded)[..., :h, :w] for name, head in self.heads.items()}


def smp_builder(arch: str):
    def build(in_channels: int, outputs: Mapping[str, int], options: SmpOptions) -> SmpNetwork:
        return SmpNetwork(arch, in_channels, outputs, options)

    return build
