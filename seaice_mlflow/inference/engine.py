"""Tiled full-scene inference with smooth blending, bounded memory and model ensembles.

Tiles overlap; inside an overlap each tile's scores are weighted by a linear ramp that falls to
zero at its edge, so seams vanish and interior pixels get exactly the whole-scene answer when
the overlap covers the network's context. Tiles are processed a row at a time and finished rows
are turned into classes at once, so memory is a strip of ``tile`` rows, not the scene: only the
optional probabilities grow with the scene.

Several models are ensembled by averaging probabilities (SIC: probabilities when every model
classifies it, otherwise the class index as a value, averaged and rounded).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from seaice_mlflow.charts import CHART_NAMES, CHARTS
from seaice_mlflow.data.downsample import upsample_chart
from seaice_mlflow.data.grid import Window
from seaice_mlflow.errors import ParameterError
from seaice_mlflow.inference.sources import TileSource

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TileOptions:
    """Tile size and overlap (working-grid pixels), tiles per forward pass, mixed precision on GPU."""

    tile: int = 512
    overlap: int = 64
    batch: int = 4
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
    """Class maps (uint8, per chart) and, when asked, scores: probabilities (K, h, w), or for a
    SIC regression ensemble the class index as a value (1, h, w)."""

    charts: dict[str, np.ndarray]
    scores: dict[str, np.ndarray] | None = None

    def upsampled(self, downsample: int, shape: tuple[int, int]) -> "ChartPrediction":
        """Back on the 80 m grid from a model's x K working grid (each pixel repeated K x K)."""
        charts = {c: upsample_chart(v, downsample, shape) for c, v in self.charts.items()}
        scores = None if self.scores is None else {
            c: upsample_chart(v, downsample, shape) for c, v in self.scores.items()}
        return ChartPrediction(charts, scores)


def tile_origins(length: int, tile: int, step: int) -> list[int]:
    """Start of each tile along one axis: every ``step`` pixels, the last one flush with the end."""
    if length <= tile:
        return [0]
    origins = list(range(0, length - tile + 1, step))
    if origins[-1] != length - tile:
        origins.append(length - tile)
    return origins


def ramp(length: int, before: int, after: int) -> np.ndarray:
    """1-D blending weights: rising over the ``before`` pixels shared with the previous tile,
    falling over the ``after`` pixels shared with the next, 1 elsewhere (never exactly 0)."""
    weights = np.ones(length, np.float32)
    if before > 0:
        weights[:before] = (np.arange(before) + 0.5) / before
    if after > 0:
        weights[length - after:] = np.minimum(weights[length - after:], (np.arange(after)[::-1] + 0.5) / after)
    return weights


def _overlaps(origins: list[int], size: int, i: int) -> tuple[int, int]:
    before = origins[i - 1] + size - origins[i] if i > 0 else 0
    after = origins[i] + size - origins[i + 1] if i + 1 < len(origins) else 0
    return max(before, 0), max(after, 0)


class ChartPredictor:
    """One model or an ensemble, ready to predict scenes tile by tile.

    ``members`` are (model, sic_head) pairs; models return {chart: (N, K, H, W)} for any H, W.
    """

    def __init__(self, members: Sequence[tuple[torch.nn.Module, str]], device: str | torch.device = "auto",
                 options: TileOptions = TileOptions()):
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.options = options
        self.models = [m.to(self.device).eval() for m, _ in members]
        self.sic_heads = [h for _, h in members]
        if self.device.type == "cuda":
            self.models = [m.to(memory_format=torch.channels_last) for m in self.models]
        self.sic_value = any(h == "regression" for h in self.sic_heads)
        self.channels = {"SIC": 1 if self.sic_value else CHARTS["SIC"].n_classes,
                         **{c: CHARTS[c].n_classes for c in CHART_NAMES[1:]}}
        self.stride = max(int(getattr(m, "stride", 1)) for m in self.models)

    @torch.inference_mode()
    def scores(self, batch: np.ndarray) -> np.ndarray:
        """Ensemble scores (B, sum K, h, w) float32 of an input batch (B, C, h, w)."""
        x = torch.from_numpy(batch).to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        amp = torch.autocast("cuda", dtype=torch.float16) if self.device.type == "cuda" and self.options.amp \
            else nullcontext()
        total = None
        for model, sic_head in zip(self.models, self.sic_heads):
            with amp:
                out = model(x)
            parts = []
            for chart in CHART_NAMES:
                logits = out[chart].float()
                if chart == "SIC" and sic_head == "regression":
                    parts.append(logits[:, :1])
                elif chart == "SIC" and self.sic_value:  # a classifier in a regression ensemble
                    probs = F.softmax(logits, dim=1)
                    index = torch.arange(probs.shape[1], device=probs.device, dtype=probs.dtype)
                    parts.append((probs * index[None, :, None, None]).sum(dim=1, keepdim=True))
                else:
                    parts.append(F.softmax(logits, dim=1))
            stacked = torch.cat(parts, dim=1)
            total = stacked if total is None else total + stacked
        return (total / len(self.models)).cpu().numpy()

    def classes(self, scores: np.ndarray) -> dict[str, np.ndarray]:
        """Class maps (uint8) from scores (sum K, h, w)."""
        out, start = {}, 0
        for chart in CHART_NAMES:
            part = scores[start:start + self.channels[chart]]
            start += self.channels[chart]
            if chart == "SIC" and self.sic_value:
                out[chart] = np.clip(np.rint(part[0]), 0, CHARTS["SIC"].n_classes - 1).astype(np.uint8)
            else:
                out[chart] = part.argmax(axis=0).astype(np.uint8)
        return out

    def split_scores(self, scores: np.ndarray) -> dict[str, np.ndarray]:
        out, start = {}, 0
        for chart in CHART_NAMES:
            out[chart] = scores[start:start + self.channels[chart]]
            start += self.channels[chart]
        return out

    def predict(self, source: TileSource, with_scores: bool = False, progress: bool = False) -> ChartPrediction:
        """Tiled prediction of a whole source on its working grid."""
        h, w = source.shape
        opts = self.options
        tile = max(self.stride, opts.tile - opts.tile % self.stride)
        th, tw = min(tile, h), min(tile, w)
        step = tile - min(opts.overlap, tile // 2)  # an overlap beyond half a tile would only cost time
        rows, cols = tile_origins(h, th, step), tile_origins(w, tw, step)
        n_channels = sum(self.channels.values())
        acc = np.zeros((n_channels, th, w), np.float32)
        weight = np.zeros((th, w), np.float32)
        charts = {c: np.empty((h, w), np.uint8) for c in CHART_NAMES}
        scores = np.empty((n_channels, h, w), np.float32) if with_scores else None
        col_weights = [ramp(tw, *_overlaps(cols, tw, j)) for j in range(len(cols))]
        for i, r in enumerate(tqdm(rows, desc="tile rows", unit="row", disable=not progress, leave=False)):
            row_weight = ramp(th, *_overlaps(rows, th, i))
            for first in range(0, len(cols), opts.batch):
                chunk = range(first, min(first + opts.batch, len(cols)))
                batch = np.stack([source.read(Window(r, cols[j], th, tw)) for j in chunk])
                for j, tile_scores in zip(chunk, self.scores(batch)):
                    wmap = np.outer(row_weight, col_weights[j])
                    acc[:, :, cols[j]:cols[j] + tw] += tile_scores * wmap
                    weight[:, cols[j]:cols[j] + tw] += wmap
            done = (rows[i + 1] if i + 1 < len(rows) else h) - r  # rows no later tile touches
            finished = acc[:, :done] / weight[:done]
            for chart, values in self.classes(finished).items():
                charts[chart][r:r + done] = values
            if scores is not None:
                scores[:, r:r + done] = finished
            acc = np.concatenate([acc[:, done:], np.zeros((n_channels, done, w), np.float32)], axis=1)
            weight = np.concatenate([weight[done:], np.zeros((done, w), np.float32)])
        return ChartPrediction(charts, self.split_scores(scores) if scores is not None else None)

    def predict_whole(self, source: TileSource, with_scores: bool = False) -> ChartPrediction:
        """One forward pass over the whole source (the reference tiling must agree with)."""
        scores = self.scores(source.read(Window.full(source.shape))[None])[0]
        return ChartPrediction(self.classes(scores), self.split_scores(scores) if with_scores else None)
