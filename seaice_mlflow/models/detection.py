"""Instance segmentation of ice floes: torchvision's Mask R-CNN with a ResNet-FPN backbone.

Registry name ``maskrcnn``, level ``instance``: the network finds objects (two classes, the
background and a floe) and gives each a box, a score and a mask. It is not a
:class:`~seaice_mlflow.models.spec.Network`: it has no ``heads`` and no ``{head: (N, K, H, W)}``
output, but torchvision's detection interface. In training mode ``network(images, targets)``
returns its loss dict (the training loop's ``TrainingParts.objective`` sums it); in eval mode
:meth:`FloeNet.detect` gives boxes, scores and mask probabilities per image, pasted into the
photo's pixels by :func:`paste_masks` one box at a time (torchvision's own postprocessing holds
one full-size float mask per detection).

Weights are never downloaded: ``weights=None`` and ``weights_backbone=None`` always, the
backbone randomly initialised with trainable batch norm (what torchvision does without
pretrained weights) or its weights loaded from a local state dict (``pretrained``, a
torchvision ResNet checkpoint: its ``fc`` is left out). Inputs arrive standardised by the task
(ImageNet mean and std for photos), so the detector's own normalisation is the identity; its
transform resizes every image so that its short side is ``min_size`` (its long side at most
``max_size``) and maps boxes and masks back to the image's pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

from seaice_mlflow.core.errors import ModelSpecError
from seaice_mlflow.models.options import FLOE_BACKBONES, FloeNetOptions
from seaice_mlflow.models.weights import load_fitting

#: The one output of a floe detector and its classes (the background and a floe).
FLOES = "floes"
FLOE_OUTPUTS = {FLOES: 2}


class FloeNet(MaskRCNN):
    """torchvision's Mask R-CNN with :meth:`detect`, detections without full-size masks."""

    @torch.no_grad()
    def detect(self, images: Sequence[Tensor]) -> list[dict[str, Tensor]]:
        """Detections of standardised images (3, H, W) in eval mode: per image ``boxes`` (n, 4)
        xyxy in the image's pixels, ``scores`` (n,) and ``masks`` (n, M, M) probabilities inside
        the boxes, best first; :func:`paste_masks` puts them into the image."""
        sizes = [tuple(image.shape[-2:]) for image in images]
        batch, _ = self.transform(list(images))
        features = self.backbone(batch.tensors)
        proposals, _ = self.rpn(batch, features)
        detections, _ = self.roi_heads(features, proposals, batch.image_sizes)
        out = []
        for found, resized, size in zip(detections, batch.image_sizes, sizes):
            ratio = torch.tensor([size[1] / resized[1], size[0] / resized[0]] * 2, device=found["boxes"].device)
            out.append({"boxes": found["boxes"] * ratio, "scores": found["scores"], "masks": found["masks"][:, 0]})
        return out


def paste_masks(
    masks: Tensor, boxes: Tensor, shape: tuple[int, int], threshold: float = 0.5
) -> list[tuple[tuple[slice, slice], Tensor]]:
    """Each box's mask (M, M probabilities) at the image's pixels, as torchvision pastes it (the
    mask padded by one cell, resized bilinearly to the box): per box, the image window it covers
    and a bool mask of that window (both empty for a box outside the image), computed box by box
    so memory follows the boxes, not the image."""
    if not len(masks):
        return []
    m = masks.shape[-1]
    padded = F.pad(masks.float(), (1, 1, 1, 1))
    scale = (m + 2) / m
    centre, half = (boxes[:, 2:] + boxes[:, :2]) / 2, (boxes[:, 2:] - boxes[:, :2]) / 2 * scale
    expanded = torch.cat([centre - half, centre + half], dim=1).to(torch.int64).tolist()
    height, width = shape
    pasted = []
    for mask, (x0, y0, x1, y1) in zip(padded, expanded):
        w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
        resized = F.interpolate(mask[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        top, left = min(max(y0, 0), height), min(max(x0, 0), width)
        bottom, right = max(min(y1 + 1, height), top), max(min(x1 + 1, width), left)
        inside = resized[top - y0 : bottom - y0, left - x0 : right - x0] >= threshold
        pasted.append(((slice(top, bottom), slice(left, right)), inside))
    return pasted


def build_maskrcnn(in_channels: int, outputs: Mapping[str, int], options: FloeNetOptions) -> FloeNet:
    """A Mask R-CNN of ``outputs``' one entry (its classes with the background) on RGB inputs."""
    if in_channels != 3:
        raise ModelSpecError("model", f"maskrcnn takes RGB photos (3 channels), not {in_channels} input channels")
    if len(outputs) != 1 or min(outputs.values()) < 2:
        raise ModelSpecError("model", f"maskrcnn has one output of 2 or more classes with the background "
                             f"(e.g. {FLOE_OUTPUTS}), got {dict(outputs)}")  # fmt: skip
    if options.backbone not in FLOE_BACKBONES:
        raise ModelSpecError("encoder", f"{options.backbone!r} is not a backbone of maskrcnn; choose among "
                             f"{', '.join(FLOE_BACKBONES)}")  # fmt: skip
    if not 32 <= options.min_size <= options.max_size:
        raise ModelSpecError("model", f"maskrcnn needs 32 <= min_size <= max_size, got {options.min_size} and "
                             f"{options.max_size}")  # fmt: skip
    if min(options.rois_per_image, options.max_floes) < 1:
        raise ModelSpecError("model", f"maskrcnn needs rois_per_image and max_floes of 1 or more, got "
                             f"{options.rois_per_image} and {options.max_floes}")  # fmt: skip
    backbone = resnet_fpn_backbone(backbone_name=options.backbone, weights=None, norm_layer=nn.BatchNorm2d,
                                   trainable_layers=5)  # fmt: skip
    if options.pretrained:
        load_fitting(backbone.body, options.pretrained, f"{options.backbone} backbone")
    return FloeNet(backbone, num_classes=next(iter(outputs.values())), min_size=options.min_size,
                   max_size=options.max_size, image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0],
                   box_batch_size_per_image=options.rois_per_image,
                   box_detections_per_img=options.max_floes)  # fmt: skip
