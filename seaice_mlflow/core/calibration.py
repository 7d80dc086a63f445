"""Calibration of classified heads, for any task: temperature scaling and the expected calibration error.

Temperature scaling (Guo et al. 2017) divides a classified head's logits by one temperature ``T``
before the softmax: ``T > 1`` softens an over-confident model, ``T < 1`` sharpens an under-confident
one, and the argmax (the chart) stays as it is. :func:`fit_temperature` minimises the negative
log-likelihood of held-out pixels over ``log T`` with L-BFGS and clamps ``T`` to
:data:`TEMPERATURE_RANGE`; :func:`sample_logits` draws those pixels, a bounded uniform random sample
of a network's logits where the target is not the task's ignore index, tile by tile. A head whose
pixels hold fewer than :data:`MIN_CLASSES` classes keeps ``T = 1`` (:func:`calibrate`): with one
class the likelihood only asks for that class's probability, as high (a right model: ``T`` to 0) or
as low (a wrong one: ``T`` to infinity) as it goes, which is no calibration.

The expected calibration error is the top-label one (Guo et al. 2017; DMI's ASIP reports it for its
calibrated sea-ice probabilities, Wulf et al. 2024): pixels are put in :data:`ECE_BINS` equal-width
bins of their maximum probability, and the ECE is the pixel-weighted mean of ``|accuracy -
confidence|`` over the bins, in percent. A :class:`ReliabilityTable` keeps per-bin counts and sums,
so it pools over scenes as the confusion matrices do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from seaice_mlflow.core.task import TaskSpec
from seaice_mlflow.core.tiling import TileSource, Window

#: Temperatures a fit may end at: beyond them a head is all but uniform or all but one-hot.
TEMPERATURE_RANGE = (0.05, 20.0)
#: Equal-width confidence bins of the expected calibration error.
ECE_BINS = 15
#: Pixels per head that a temperature is fitted on, at most (a uniform random sample of the valid ones).
SAMPLE_PIXELS = 200_000
#: Classes the pixels of a head must hold for its temperature to be fitted.
MIN_CLASSES = 2


def check_temperatures(task: TaskSpec, temperatures: Mapping[str, float]) -> dict[str, float]:
    """``temperatures`` as floats; a ValueError for a head that is not a classified head of ``task``
    or a temperature that is not a positive finite number."""
    task.check_names(temperatures, "temperatures")
    out = {}
    for name, value in temperatures.items():
        if task.head(name).kind != "classification":
            raise ValueError(f"temperatures: head {name} is a regression; only classified heads have a temperature")
        value = float(value)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"temperatures: {name} has temperature {value}; a temperature is a positive number")
        out[name] = value
    return out


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, max_iter: int = 100) -> float:
    """The temperature minimising the mean negative log-likelihood of ``targets`` (N,) under
    ``softmax(logits / T)`` (logits (N, K)), found over ``log T`` from ``T = 1`` by L-BFGS and
    clamped to :data:`TEMPERATURE_RANGE`; 1 for no pixels or a fit that does not end finite."""
    if targets.numel() == 0:
        return 1.0
    logits, targets = logits.detach().float(), targets.detach().long()
    log_t = torch.zeros((), dtype=torch.float32, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    optimiser.step(closure)
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature):
        return 1.0
    return min(max(temperature, TEMPERATURE_RANGE[0]), TEMPERATURE_RANGE[1])


@dataclass
class PixelSample:
    """A uniform random sample of at most ``size`` pixels (logits, target) of one head, drawn as
    pixels come: each pixel gets a random key and the ``size`` smallest keys stay."""

    size: int
    rng: np.random.Generator
    logits: np.ndarray | None = None  # (n, K) float32
    targets: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    keys: np.ndarray = field(default_factory=lambda: np.empty(0))

    def add(self, logits: np.ndarray, targets: np.ndarray) -> None:
        """Offer pixels: logits (n, K) and their targets (n,)."""
        keys = self.rng.random(len(targets))
        if self.logits is not None:
            logits, targets = np.concatenate([self.logits, logits]), np.concatenate([self.targets, targets])
            keys = np.concatenate([self.keys, keys])
        if len(keys) > self.size:
            keep = np.argpartition(keys, self.size)[: self.size]
            logits, targets, keys = logits[keep], targets[keep], keys[keep]
        self.logits, self.targets, self.keys = logits, targets, keys

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The sample as (logits (n, K) float32, targets (n,) int64)."""
        logits = self.logits if self.logits is not None else np.empty((0, 1), np.float32)
        return torch.from_numpy(np.ascontiguousarray(logits)), torch.from_numpy(self.targets.astype(np.int64))


def sample_logits(
    network: torch.nn.Module,
    task: TaskSpec,
    scenes: Iterable[tuple[TileSource, Mapping[str, np.ndarray]]],
    device: torch.device,
    tile: int = 512,
    size: int = SAMPLE_PIXELS,
    seed: int = 0,
) -> dict[str, PixelSample]:
    """Per classified head of ``task``, a uniform random sample of at most ``size`` pixels of the
    network's logits where the target is not the ignore index, over ``scenes`` (a tile source and its
    targets per head, (h, w) on the source's grid), read in non-overlapping ``tile`` x ``tile`` windows."""
    rng = np.random.default_rng(seed)
    heads = [h for h in task.heads if h.kind == "classification"]
    samples = {h.name: PixelSample(size, rng) for h in heads}
    training = network.training
    network.eval()
    with torch.no_grad():  # not inference_mode: the fit takes gradients through these logits
        for source, targets in scenes:
            height, width = source.shape
            for row in range(0, height, tile):
                for col in range(0, width, tile):
                    window = Window(row, col, min(tile, height - row), min(tile, width - col))
                    x = torch.from_numpy(source.read(window)[None]).to(device)
                    out = network(x)
                    for head in heads:
                        target = np.asarray(targets[head.name])[window.slices].ravel()
                        valid = target != task.ignore_index
                        if valid.any():
                            logits = out[head.name][0].float().flatten(1).T.cpu().numpy()
                            samples[head.name].add(logits[valid], target[valid].astype(np.int64))
    network.train(training)
    return samples


@dataclass
class ReliabilityTable:
    """Per confidence bin (:data:`ECE_BINS` equal-width bins of the maximum probability): pixels, the
    sum of their confidences and the number predicted right; pools by :meth:`add`."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(ECE_BINS, np.int64))
    confidence: np.ndarray = field(default_factory=lambda: np.zeros(ECE_BINS))
    correct: np.ndarray = field(default_factory=lambda: np.zeros(ECE_BINS, np.int64))

    def add(self, confidence: np.ndarray, correct: np.ndarray) -> None:
        """Count pixels: their maximum probability (0..1) and whether their class was right."""
        confidence = np.asarray(confidence, dtype=np.float64).ravel()
        bins = np.clip((confidence * ECE_BINS).astype(np.int64), 0, ECE_BINS - 1)  # 1.0 in the last bin
        self.counts += np.bincount(bins, minlength=ECE_BINS)
        self.confidence += np.bincount(bins, weights=confidence, minlength=ECE_BINS)
        self.correct += np.bincount(bins, weights=np.asarray(correct, bool).ravel(), minlength=ECE_BINS).astype(
            np.int64
        )

    @property
    def pixels(self) -> int:
        return int(self.counts.sum())

    def accuracy(self) -> np.ndarray:
        """Share of right pixels per bin (NaN in empty bins)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.correct / self.counts

    def mean_confidence(self) -> np.ndarray:
        """Mean maximum probability per bin (NaN in empty bins)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.confidence / self.counts

    def ece(self) -> float:
        """Expected calibration error in percent (NaN without pixels)."""
        if self.pixels == 0:
            return float("nan")
        gaps = np.abs(self.correct - self.confidence)  # per bin: pixels x |accuracy - confidence|
        return float(100 * gaps.sum() / self.pixels)

    def as_dict(self) -> dict[str, list]:
        return {
            "bin_edges": np.linspace(0, 1, ECE_BINS + 1).tolist(),
            "pixels": self.counts.tolist(),
            "accuracy": [None if math.isnan(v) else float(v) for v in self.accuracy()],
            "confidence": [None if math.isnan(v) else float(v) for v in self.mean_confidence()],
        }


def reliability(probabilities: torch.Tensor, targets: torch.Tensor) -> ReliabilityTable:
    """The reliability table of probabilities (N, K) against targets (N,): top-label confidence and argmax."""
    table = ReliabilityTable()
    confidence, predicted = probabilities.max(dim=1)
    table.add(confidence.numpy(), (predicted == targets).numpy())
    return table


@dataclass(frozen=True)
class HeadCalibration:
    """A classified head's temperature (``fitted``, or 1 for pixels of fewer than :data:`MIN_CLASSES`
    classes), the pixels and classes it was fitted on and their expected calibration error (percent)
    after and before (T = 1) the scaling."""

    temperature: float
    fitted: bool
    pixels: int
    classes: int
    ece: float
    ece_uncalibrated: float


def calibrate(samples: Mapping[str, PixelSample]) -> dict[str, HeadCalibration]:
    """A temperature per head of ``samples`` (:func:`sample_logits`), with its ECE before and after."""
    out = {}
    for name, sample in samples.items():
        logits, targets = sample.tensors()
        classes = int(torch.unique(targets).numel())
        fitted = classes >= MIN_CLASSES
        temperature = fit_temperature(logits, targets) if fitted else 1.0
        out[name] = HeadCalibration(
            temperature,
            fitted,
            int(targets.numel()),
            classes,
            reliability(F.softmax(logits / temperature, dim=1), targets).ece(),
            reliability(F.softmax(logits, dim=1), targets).ece(),
        )
    return out
