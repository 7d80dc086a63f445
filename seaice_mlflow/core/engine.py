"""Tiled full-scene inference with smooth blending, bounded memory, model ensembles and uncertainty layers.

Tiles overlap and start on multiples of the network's stride, so every tile sees the pooling grid
of a whole-scene pass (the short last tile of a row or column is zero-padded by the network exactly
as the whole scene is at that edge). Inside an overlap the two tiles' scores are blended with weights
that are zero on the quarter nearest each tile's edge, where its context is cut off, and ramp
linearly across the middle half; so seams vanish, and a pixel gets exactly the whole-scene answer
when the network is translation-equivariant and its context radius is within a quarter of the
overlap (the U-Net's receptive field is larger, but its far context weighs little: tiles of 96 px
with 48 px overlap agree with the whole scene on >= 99.9 % of pixels). Tiles are processed a row at
a time and finished rows are turned into classes at once, so memory is a strip of ``tile`` rows, not
the scene: only the optional probabilities and uncertainty layers grow with the scene.

Several models are ensembled by averaging probabilities; a head that some member regresses is
averaged as a value, the class index (classifying members give their expected index), and rounded.
A member may carry a temperature per classified head (temperature scaling,
:mod:`~seaice_mlflow.core.calibration`): its probabilities are ``softmax(logits / T)``.

Uncertainty layers (``predict(..., uncertainty=True)``, float32 (h, w) each, named
``<head>_<kind>``), computed strip by strip from what the tiles blend:

* ``confidence``: the maximum of the blended ensemble probability (classified heads);
* ``entropy``: its entropy divided by ``log K``, so 0 (one class) to 1 (uniform over the K classes);
* ``disagreement`` (an ensemble of 2 or more): the members' mutual information, the entropy of the
  mean probability minus the mean of the members' entropies (each member's probability blended
  over the tiles as the mean is), divided by ``log K``: 0 when the members agree;
* ``spread`` (a head averaged as a value): the weighted standard deviation of the value over the
  tile contributions and the members, with the blending weights (moments in float64);
* ``confidence_uncalibrated`` (asked by name only): the confidence at temperature 1, for
  evaluating a calibration.

An ensemble's ``disagreement`` keeps every member's probabilities in the strip (members x K
channels). The predictor takes each member's :class:`~seaice_mlflow.core.task.TaskSpec` and names no head.

One model with no layer asked (the usual case) pays nothing for ensembles or layers: its scores are
joined once, not averaged or copied, and each tile is weighted in place before it is added to the
strip. What the engine adds to the network's forward passes (reading and assembling the inputs, the
channels_last layout, softmax, blending, decoding) costs 1.14-1.24x the bare forward's CPU time on the
same tiles (``bench_inference.py``'s forward case, 2-core CPU).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from seaice_mlflow.core.calibration import check_temperatures
from seaice_mlflow.core.defaults import DEVICES, TILING
from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.core.progress import progress_bar
from seaice_mlflow.core.task import Head, TaskSpec
from seaice_mlflow.core.tiling import TileSource, Window, upsample_chart
from seaice_mlflow.core.uncertainty import (
    LayerKind,
    confidence,
    layer_kinds,
    layer_name,
    mutual_information,
    normalised_entropy,
    standard_deviation,
)

#: Smallest blending weight: a cut-off tile edge still counts a millionth where another tile covers it.
RAMP_FLOOR = 1e-6


@dataclass(frozen=True)
class TileOptions:
    """Tile size and overlap (working-grid pixels), tiles per forward pass, mixed precision on GPU."""

    tile: int = TILING.tile
    overlap: int = TILING.overlap
    batch: int = TILING.batch
    amp: bool = True


def resolve_device(device: str) -> torch.device:
    """``auto`` picks the GPU when there is one; ``cuda`` without a GPU is a clear error."""
    if device not in DEVICES:
        raise ParameterError("device", f"{device!r} is not one of {', '.join(DEVICES)}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device", "cuda was asked for but no GPU is visible; use --device cpu or auto")
    return torch.device(device)


@dataclass
class ChartPrediction:
    """Class maps (uint8, per head) and, when asked, scores: probabilities (K, h, w), or for a
    regressed head the class index as a value (1, h, w); and uncertainty layers (float32 (h, w)
    each, ``<head>_<kind>``: see the module docstring)."""

    charts: dict[str, np.ndarray]
    scores: dict[str, np.ndarray] | None = None
    uncertainty: dict[str, np.ndarray] | None = None

    def upsampled(self, downsample: int, shape: tuple[int, int]) -> ChartPrediction:
        """Back on the 80 m grid from a model's x K working grid (each pixel repeated K x K)."""

        def up(arrays: dict[str, np.ndarray] | None) -> dict[str, np.ndarray] | None:
            return None if arrays is None else {c: upsample_chart(v, downsample, shape) for c, v in arrays.items()}

        return ChartPrediction(up(self.charts), up(self.scores), up(self.uncertainty))


class Member(NamedTuple):
    """One model of a predictor: its network, the task as it predicts it and, per classified head,
    the temperature its logits are divided by before the softmax (a head not named: 1)."""

    network: torch.nn.Module
    task: TaskSpec
    temperatures: Mapping[str, float] = MappingProxyType({})


def tile_origins(length: int, tile: int, step: int, align: int = 1) -> list[int]:
    """Start of each tile along one axis: every ``step`` pixels, the last one the first
    ``align``-multiple whose tile reaches the end (so it may be up to ``align - 1`` pixels short).

    With ``step`` and ``align`` multiples of the model's stride, every tile sees the pooling grid
    of the whole-scene pass, and the short last tile is zero-padded internally exactly as the
    whole scene is at that edge.
    """
    if length <= tile:
        return [0]
    last = -(-(length - tile) // align) * align
    return list(range(0, last, step)) + [last]


def ramp(length: int, before: int, after: int) -> np.ndarray:
    """1-D blending weights of a tile sharing ``before`` pixels with the previous tile and
    ``after`` with the next: 0 on the outer quarter of each shared stretch (where the tile's
    context is cut off), rising linearly over its middle half, 1 elsewhere.

    Two neighbours' weights sum to exactly one over their shared stretch, so a pixel there gets
    the whole-scene answer whenever the network's context radius is within a quarter of the
    overlap. A tiny floor keeps every weight positive (no pixel can end up with no weight).
    """
    weights = np.ones(length, np.float32)
    for shared, rising in ((before, True), (after, False)):
        if shared > 0:
            x = (np.arange(shared, dtype=np.float64) + 0.5) / shared  # position across the stretch
            part = np.clip((x - 0.25) * 2, 0.0, 1.0).astype(np.float32)
            if rising:
                weights[:shared] = np.minimum(weights[:shared], part)
            else:
                weights[length - shared :] = np.minimum(weights[length - shared :], part[::-1])
    return np.maximum(weights, RAMP_FLOOR)


def _overlaps(origins: list[int], sizes: list[int], i: int) -> tuple[int, int]:
    before = origins[i - 1] + sizes[i - 1] - origins[i] if i > 0 else 0
    after = origins[i] + sizes[i] - origins[i + 1] if i + 1 < len(origins) else 0
    return max(before, 0), max(after, 0)


def tile_layout(length: int, tile: int, overlap: int, stride: int) -> tuple[list[int], list[int]]:
    """Origins and sizes of the tiles along one axis (see :func:`tile_origins`).

    The step is ``tile - overlap`` rounded down to the stride, but at least half a tile (rounded
    up to the stride): an overlap beyond half a tile would only cost time.
    """
    half = -(-(tile // 2) // stride) * stride
    step = max((tile - min(overlap, tile // 2)) // stride * stride, min(half, tile), stride)
    origins = tile_origins(length, tile, step, stride)
    return origins, [min(tile, length - o) for o in origins]


def blend_weights(sizes: list[int], origins: list[int]) -> list[np.ndarray]:
    """1-D ramps of every tile along one axis."""
    return [ramp(size, *_overlaps(origins, sizes, i)) for i, size in enumerate(sizes)]


def batch_groups(widths: Sequence[int], batch: int) -> list[list[int]]:
    """The tiles of a tile row (by column index) in forward passes of at most ``batch`` tiles of one
    shape: the short last tile of a row goes in a pass of its own."""
    groups = []
    for first in range(0, len(widths), batch):
        chunk = list(range(first, min(first + batch, len(widths))))
        groups += [chunk[:-1], chunk[-1:]] if widths[chunk[-1]] != widths[chunk[0]] else [chunk]
    return groups


def decode(head: Head, scores: np.ndarray) -> np.ndarray:
    """Class map (uint8) of one head from its scores (K, ...): the argmax of probabilities, or a
    value (1, ...) rounded and clamped to the head's classes."""
    if scores.shape[0] == 1 and head.n_classes > 1:
        return np.clip(np.rint(scores[0]), 0, head.n_classes - 1).astype(np.uint8)
    return scores.argmax(axis=0).astype(np.uint8)


def value_heads(tasks: Sequence[TaskSpec]) -> frozenset[str]:
    """Heads that an ensemble of models predicting these tasks averages as values: those any member regresses."""
    names = {task.names for task in tasks}
    if len(names) != 1:
        raise ValueError(
            f"the models predict different heads ({' / '.join(', '.join(n) for n in sorted(names))}); "
            "an ensemble needs models of one task"
        )
    return frozenset(h.name for task in tasks for h in task.heads if h.kind == "regression")


class ChartPredictor:
    """One model or an ensemble, ready to predict scenes tile by tile.

    ``members`` are (network, task) pairs or :class:`Member` s (with temperatures): each network
    returns ``{head: (N, K, H, W)}`` for any H, W, decoded as its task's head kinds say.
    """

    def __init__(
        self,
        members: Sequence[tuple[torch.nn.Module, TaskSpec] | Member],
        device: str | torch.device = "auto",
        options: TileOptions = TileOptions(),
    ):
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.options = options
        given = [Member(*member) for member in members]
        self.members = [
            Member(m.network.to(self.device).eval(), m.task, check_temperatures(m.task, m.temperatures)) for m in given
        ]
        self.models = [m.network for m in self.members]
        self.tasks = [m.task for m in self.members]
        self.values = value_heads(self.tasks)
        self.heads = self.tasks[0].heads
        self.channels = {h.name: 1 if h.name in self.values else h.n_classes for h in self.heads}
        #: Heads averaged as probabilities (the others are averaged as values).
        self.classified = {name: k for name, k in self.channels.items() if name not in self.values}
        self.stride = max(int(getattr(m, "stride", 1)) for m in self.models)

    def member_scores(
        self, out: Mapping[str, torch.Tensor], member: Member, uncalibrated: bool = False
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One member's scores per head from its outputs: probabilities at its temperatures, or a
        value (B, 1, h, w); and, with ``uncalibrated``, its probabilities at temperature 1 per
        classified head of the ensemble."""
        scores, raw = {}, {}
        for head in member.task.heads:
            logits = out[head.name].float()
            if head.kind == "regression":
                scores[head.name] = logits[:, :1]
                continue
            temperature = member.temperatures.get(head.name, 1.0)
            probs = F.softmax(logits if temperature == 1 else logits / temperature, dim=1)
            if head.name in self.values:  # a classifier in a regression ensemble: its expected class
                index = torch.arange(probs.shape[1], device=probs.device, dtype=probs.dtype)
                scores[head.name] = (probs * index[None, :, None, None]).sum(dim=1, keepdim=True)
                continue
            scores[head.name] = probs
            if uncalibrated:
                raw[head.name] = probs if temperature == 1 else F.softmax(logits, dim=1)
        return scores, raw

    @torch.inference_mode()
    def outputs(self, batch: np.ndarray, kinds: Collection[LayerKind] = ()) -> dict[str, np.ndarray]:
        """What each tile of an input batch (B, C, h, w) adds to the blend, by part (B, channels, h, w):
        ``scores``, the ensemble scores (float32, sum K); and for the layers in ``kinds``: ``moments``,
        the weight 1, mean value and mean squared value of each value head over the members (float64,
        ``spread``); ``members``, every member's probabilities of the classified heads (float32,
        ``disagreement`` of 2+ members); ``uncalibrated``, the ensemble's probabilities of the
        classified heads at temperature 1 (``confidence_uncalibrated``)."""
        # channels_last inputs take the faster NHWC convolutions on CPU (measured about 1.5x) and
        # GPU alike; the caller's module keeps its weights as they are
        x = torch.from_numpy(batch).to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        amp = (
            torch.autocast("cuda", dtype=torch.float16)
            if self.device.type == "cuda" and self.options.amp
            else nullcontext()
        )
        per_member = []
        for member in self.members:
            with amp:
                out = member.network(x)
            per_member.append(self.member_scores(out, member, "confidence_uncalibrated" in kinds))
        parts = {"scores": torch.cat([member_mean([s[name] for s, _ in per_member]) for name in self.channels], 1)}
        values = [name for name in self.channels if name in self.values]
        if "spread" in kinds and values:
            each = [torch.cat([s[name] for name in values], dim=1).double() for s, _ in per_member]
            ones = torch.ones_like(each[0][:, :1])
            parts["moments"] = torch.cat([ones, member_mean(each), member_mean([v * v for v in each])], dim=1)
        if "disagreement" in kinds and len(per_member) > 1 and self.classified:
            parts["members"] = torch.cat([s[name] for s, _ in per_member for name in self.classified], dim=1)
        if "confidence_uncalibrated" in kinds and self.classified:
            parts["uncalibrated"] = torch.cat(
                [member_mean([r[name] for _, r in per_member]) for name in self.classified], 1
            )
        return {part: values.cpu().numpy() for part, values in parts.items()}

    def scores(self, batch: np.ndarray) -> np.ndarray:
        """Ensemble scores (B, sum K, h, w) float32 of an input batch (B, C, h, w)."""
        return self.outputs(batch)["scores"]

    def classes(self, scores: np.ndarray) -> dict[str, np.ndarray]:
        """Class maps (uint8) from scores (sum K, h, w)."""
        return {head.name: decode(head, part) for head, part in zip(self.heads, self.split_scores(scores).values())}

    def split_scores(self, scores: np.ndarray) -> dict[str, np.ndarray]:
        return split_channels(scores, self.channels)

    def layers(self, parts: Mapping[str, np.ndarray], kinds: Collection[LayerKind]) -> dict[str, np.ndarray]:
        """The uncertainty layers in ``kinds`` (float32 (h, w) each, head by head) from blended parts
        (channels, h, w) of :meth:`outputs`."""
        scores = self.split_scores(parts["scores"])
        members = (
            [split_channels(p, self.classified) for p in np.split(parts["members"], len(self.members))]
            if "members" in parts
            else []
        )
        uncalibrated = split_channels(parts["uncalibrated"], self.classified) if "uncalibrated" in parts else {}
        if "moments" in parts:
            weight, moments = parts["moments"][0], np.split(parts["moments"][1:], 2)
            values = [name for name in self.channels if name in self.values]
            spreads = dict(zip(values, standard_deviation(weight, *moments)))
        else:
            spreads = {}
        out: dict[str, np.ndarray] = {}
        for name in self.channels:
            if name in spreads:
                out[layer_name(name, "spread")] = spreads[name]
            if name not in self.classified:
                continue
            if "confidence" in kinds:
                out[layer_name(name, "confidence")] = confidence(scores[name])
            if "entropy" in kinds:
                out[layer_name(name, "entropy")] = normalised_entropy(scores[name])
            if members:
                out[layer_name(name, "disagreement")] = mutual_information(
                    scores[name], np.stack([m[name] for m in members])
                )
            if name in uncalibrated:
                out[layer_name(name, "confidence_uncalibrated")] = confidence(uncalibrated[name])
        return out

    def layout(self, shape: tuple[int, int]) -> tuple[list[int], list[int], list[int], list[int]]:
        """Tile rows' origins and heights, then tile columns' origins and widths, of a working grid of
        ``shape`` (:func:`tile_layout` with the tile rounded down to the network stride)."""
        tile = max(self.stride, self.options.tile - self.options.tile % self.stride)
        rows, heights = tile_layout(shape[0], tile, self.options.overlap, self.stride)
        cols, widths = tile_layout(shape[1], tile, self.options.overlap, self.stride)
        return rows, heights, cols, widths

    def predict(
        self,
        source: TileSource,
        with_scores: bool = False,
        progress: bool = False,
        uncertainty: bool | Collection[str] = False,
    ) -> ChartPrediction:
        """Tiled prediction of a whole source on its working grid (``progress``: a bar on a terminal);
        ``uncertainty``: the product layers (True) or the layer kinds named (see the module docstring)."""
        kinds = layer_kinds(uncertainty)
        h, w = source.shape
        rows, heights, cols, widths = self.layout(source.shape)
        strips: dict[str, np.ndarray] = {}  # each part of :meth:`outputs` blended over a strip of tile rows
        weight = np.zeros((heights[0], w), np.float32)
        charts = {name: np.empty((h, w), np.uint8) for name in self.channels}
        scores = np.empty((sum(self.channels.values()), h, w), np.float32) if with_scores else None
        layers: dict[str, np.ndarray] = {}
        row_weights, col_weights = blend_weights(heights, rows), blend_weights(widths, cols)
        bar = progress_bar(rows, desc=f"tile rows ({h} x {w})", unit="row", leave=False, enabled=progress)
        for i, r in enumerate(bar):
            th = heights[i]
            for group in batch_groups(widths, self.options.batch):
                batch = np.stack([source.read(Window(r, cols[j], th, widths[j])) for j in group])
                tiles = self.outputs(batch, kinds)
                for k, j in enumerate(group):
                    wmap = np.outer(row_weights[i], col_weights[j])
                    span = slice(cols[j], cols[j] + widths[j])
                    for part, values in tiles.items():
                        if part not in strips:
                            strips[part] = np.zeros((values.shape[1], heights[0], w), values.dtype)
                        np.multiply(values[k], wmap, out=values[k])  # in place: no temporary per tile
                        strips[part][:, :th, span] += values[k]
                    weight[:th, span] += wmap
            done = (rows[i + 1] if i + 1 < len(rows) else h) - r  # rows no later tile touches
            finished = {part: strip[:, :done] for part, strip in strips.items()}
            for values in finished.values():
                values /= weight[:done]  # in place: these rows leave the strip now
            for chart, values in self.classes(finished["scores"]).items():
                charts[chart][r : r + done] = values
            if scores is not None:
                scores[:, r : r + done] = finished["scores"]
            for name, values in self.layers(finished, kinds).items() if kinds else ():
                if name not in layers:
                    layers[name] = np.empty((h, w), np.float32)
                layers[name][r : r + done] = values
            keep = heights[0] - done  # rows the next tile row adds to: move them up, in place
            for strip in strips.values():
                strip[:, :keep], strip[:, keep:] = strip[:, done:], 0
            weight[:keep], weight[keep:] = weight[done:], 0
        return ChartPrediction(
            charts, self.split_scores(scores) if scores is not None else None, layers if kinds else None
        )

    def predict_whole(
        self, source: TileSource, with_scores: bool = False, uncertainty: bool | Collection[str] = False
    ) -> ChartPrediction:
        """One forward pass over the whole source (the reference tiling must agree with)."""
        kinds = layer_kinds(uncertainty)
        parts = {k: v[0] for k, v in self.outputs(source.read(Window.full(source.shape))[None], kinds).items()}
        scores = parts["scores"]
        return ChartPrediction(
            self.classes(scores),
            self.split_scores(scores) if with_scores else None,
            self.layers(parts, kinds) if kinds else None,
        )


def member_mean(values: Sequence[torch.Tensor]) -> torch.Tensor:
    """The members' mean of one part: a single member's own tensor, not a copy (one model, the usual
    case, pays nothing for ensembling)."""
    return values[0] if len(values) == 1 else sum(values) / len(values)


def split_channels(values: np.ndarray, channels: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Consecutive channel groups (c, ...) of ``values`` (sum c, ...), in the order of ``channels``."""
    out, start = {}, 0
    for name, count in channels.items():
        out[name] = values[start : start + count]
        start += count
    return out
