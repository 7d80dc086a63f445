"""Which inputs drive each head: Captum attributions and permutation importance on sampled patches.

Task-agnostic: a network (``{head: (N, K, H, W)}``), its :class:`~seaice_mlflow.core.task.TaskSpec`,
patches of its inputs with their reference classes, and the names of the input channels.

What is attributed (:class:`HeadOutput`) is one number per patch: the mean, over the patch's
target pixels, of the head's probability of the target class (a regression head: its value).
The target of a head as a whole (``"all"``) is each valid pixel's reference class; the target of
class ``c`` is class ``c`` on the pixels whose reference is ``c`` (patches without such pixels do
not count for it). A channel's attribution is summed over the patch's pixels; a group's is the
sum of its channels' (so Integrated Gradients stays complete); the importance of a feature in a
patch is its absolute attribution over the sum of all features' absolute attributions (IceBench's
L1 normalisation), and the table gives its mean and spread over the patches.

Patches come in batches (:class:`Patches`, or any iterable of them read one at a time), so memory
is bounded by a batch, not by the number of patches: 8000 patches of 128 px with 29 channels are
15 GB of inputs, which stacked at once killed ``seaice explain``. Per-patch values are kept (a few
numbers per patch and feature) and summarised at the end.

* ``ig``, ``gradshap``, ``deepliftshap``: Captum's Integrated Gradients, GradientSHAP and
  DeepLIFT-SHAP (on a copy of the network whose activations are each called once per pass, see
  :func:`deeplift_ready`); the baseline is ``zero`` (the normalised inputs' mean), ``mean`` (each
  patch's channel means) or ``blur`` (a Gaussian-blurred patch), SHAP's distribution the baselines
  of the batch's patches (every sampled patch when they fit one batch);
* ``ablation``: Captum's Feature Ablation of each feature (a channel, or a group's channels
  together) replaced by the baseline;
* ``permutation``: model-agnostic; the feature's values are shuffled across the sampled pixels
  of each batch (all of them when they fit one batch) and the head's official score (and
  per-class F1) recomputed on the patches, pooled over the batches; the importance is the score
  drop in points, its spread over ``repeats`` shuffles.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch import nn

from seaice_mlflow.core.defaults import Baseline
from seaice_mlflow.core.task import Head, TaskSpec

Method = Literal["ig", "ablation", "gradshap", "deepliftshap", "permutation"]
METHODS: tuple[Method, ...] = get_args(Method)
Level = Literal["variable", "group"]
#: The target of a head as a whole (each pixel's reference class).
ALL = "all"
#: Activation modules DeepLIFT rewrites the gradients of (Captum's supported non-linearities).
ACTIVATIONS = (nn.ReLU, nn.ELU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Softmax, nn.MaxPool1d, nn.MaxPool2d)


@dataclass(frozen=True)
class Feature:
    """A variable or a group of variables: its name and its input channels."""

    name: str
    channels: tuple[int, ...]
    level: Level


@dataclass(frozen=True)
class Patches:
    """Sampled model inputs (N, C, P, P) and each head's reference classes (N, P, P), the
    task's ignore index where there is none; ``offset``: the number of the first patch in the whole
    sample when this is one batch of it (it seeds the batch's random draws)."""

    inputs: torch.Tensor
    references: Mapping[str, torch.Tensor]
    offset: int = 0


@dataclass(frozen=True)
class Settings:
    steps: int = 16  # Integrated Gradients' steps, GradientSHAP's samples
    baseline: Baseline = "zero"
    repeats: int = 3  # permutation shuffles
    seed: int = 0
    batch: int = 16  # patches per forward pass (IG's internal batch is batch x steps)


@dataclass(frozen=True)
class Importance:
    """One row of the table: a feature's importance for one head and target under one method."""

    method: Method
    head: str
    target: str  # "all" or a class name
    level: Level
    feature: str
    share: float  # mean over patches (over shuffles for permutation) of the L1-normalised importance
    share_spread: float  # its standard deviation
    value: float  # mean raw attribution (permutation: score drop in points)
    value_spread: float
    patches: int  # patches that count for the target

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class HeadOutput(nn.Module):
    """``network`` -> one number per patch: the mean over weighted pixels of the head's
    probability of each pixel's target class (a regression head: its value)."""

    def __init__(self, network: nn.Module, head: Head):
        super().__init__()
        self.network, self.head = network, head.name
        self.softmax = nn.Softmax(dim=1) if head.kind == "classification" else None

    def forward(self, x: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = self.network(x)[self.head]
        if self.softmax is not None:
            out = self.softmax(out).gather(1, target.unsqueeze(1))
        value = out[:, 0]
        return (value * weights).sum((1, 2)) / weights.sum((1, 2)).clamp_min(1e-12)


class CallOrdered(nn.Module):
    """An activation module a network calls several times per pass, split so that its k-th call
    of a pass goes to copy k (DeepLIFT keeps one input and output per module and call)."""

    def __init__(self, module: nn.Module, calls: int):
        super().__init__()
        self.copies = nn.ModuleList(copy.deepcopy(module) for _ in range(calls))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        module = self.copies[self.calls % len(self.copies)]
        self.calls += 1
        return module(x)


def deeplift_ready(model: nn.Module, example: Sequence[torch.Tensor]) -> nn.Module:
    """A copy of ``model`` for Captum's DeepLIFT: activations not in place, and each activation
    module the model calls more than once per pass (a ResNet block's ``relu``) split into one copy
    per call (:class:`CallOrdered`). ``example`` are forward arguments to count the calls with."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    calls: dict[nn.Module, int] = {}
    hooks = [m.register_forward_hook(lambda m, *_: calls.__setitem__(m, calls.get(m, 0) + 1))
             for m in model.modules() if isinstance(m, ACTIVATIONS)]  # fmt: skip
    with torch.no_grad():
        model(*example)
    for hook in hooks:
        hook.remove()
    split = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if calls.get(child, 0) > 1:
                ordered = CallOrdered(child, calls[child])
                setattr(parent, name, ordered)
                split.append(ordered)
    if split:

        def restart(*_):
            for ordered in split:
                ordered.calls = 0

        model.register_forward_pre_hook(restart)
    return model


def baselines(inputs: torch.Tensor, kind: Baseline) -> torch.Tensor:
    """The reference inputs: zeros (the normalised inputs' mean), each patch's channel means, or
    the patch blurred with a Gaussian of a tenth of its size."""
    if kind == "zero":
        return torch.zeros_like(inputs)
    if kind == "mean":
        return inputs.mean(dim=(2, 3), keepdim=True).expand_as(inputs).contiguous()
    size = inputs.shape[-1]
    sigma = max(size / 10, 1.0)
    return TF.gaussian_blur(inputs, kernel_size=[2 * int(2 * sigma) + 1] * 2, sigma=[sigma, sigma])


@dataclass(frozen=True)
class Target:
    """What one head's output is attributed to: per-pixel target classes and weights (N, P, P)."""

    name: str
    classes: torch.Tensor
    weights: torch.Tensor

    @property
    def counted(self) -> torch.Tensor:
        """The patches that have target pixels."""
        return self.weights.sum((1, 2)) > 0


def targets(head: Head, reference: torch.Tensor, ignore_index: int, classes: Sequence[int]) -> list[Target]:
    """The head as a whole and each class of ``classes`` (see the module docstring)."""
    valid = reference != ignore_index
    whole = Target(ALL, torch.where(valid, reference, 0).long(), valid.float())
    per_class = [Target(head.class_names[c], torch.full_like(whole.classes, c), (reference == c).float())
                 for c in classes]  # fmt: skip
    if head.kind == "regression":  # the value, weighted by the class's pixels
        per_class = [Target(t.name, torch.zeros_like(t.classes), t.weights) for t in per_class]
    return [whole, *per_class]


SHAP = ("gradshap", "deepliftshap")
#: Baselines of DeepLIFT-SHAP's distribution (its cost grows with patches x baselines).
SHAP_BASELINES = 8


def _attribute(
    method: Method, model: HeadOutput, inputs: torch.Tensor, base: torch.Tensor, target: Target,
    mask: torch.Tensor | None, settings: Settings, offset: int = 0,
) -> torch.Tensor:  # fmt: skip
    """Captum's attribution (N, C, P, P) of one method for one target, ``settings.batch`` patches
    at a time; ``base`` is each patch's baseline, for the SHAP methods the baselines' distribution;
    ``offset``: the number of the first of ``inputs`` in the whole sample (seeds GradientSHAP)."""
    from captum.attr import DeepLiftShap, FeatureAblation, GradientShap, IntegratedGradients  # 2 s to import

    # patches per call, so that about settings.batch inputs go through the network at once
    expansion = {"gradshap": settings.steps, "deepliftshap": len(base)}.get(method, 1)
    chunk = max(1, settings.batch // expansion)
    ready = None
    if method == "deepliftshap":  # the calls are counted on a pass of the size DeepLIFT runs: inputs and baselines
        size = 2 * min(chunk, len(inputs)) * len(base)
        example = (inputs[:1].expand(size, -1, -1, -1), target.classes[:1].expand(size, -1, -1),
                   target.weights[:1].expand(size, -1, -1))  # fmt: skip
        ready = deeplift_ready(model, example)
    parts = []
    for start in range(0, len(inputs), chunk):
        part = slice(start, start + chunk)
        x, args = inputs[part], (target.classes[part], target.weights[part])
        if method == "ig":
            parts.append(IntegratedGradients(model).attribute(x, baselines=base[part], additional_forward_args=args,
                                                              n_steps=settings.steps,
                                                              internal_batch_size=settings.batch))  # fmt: skip
        elif method == "gradshap":  # Captum draws its baselines and path points from numpy's global generator
            saved = np.random.get_state()
            np.random.seed(settings.seed + offset + start)
            try:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(settings.seed + offset + start)
                    parts.append(GradientShap(model).attribute(x, baselines=base, n_samples=settings.steps,
                                                               additional_forward_args=args))  # fmt: skip
            finally:
                np.random.set_state(saved)
        elif method == "deepliftshap":
            with warnings.catch_warnings():  # "setting hooks on non-linear activations": what DeepLIFT does
                warnings.simplefilter("ignore", UserWarning)
                parts.append(DeepLiftShap(ready).attribute(x, baselines=base, additional_forward_args=args))
        else:
            parts.append(FeatureAblation(model).attribute(x, baselines=base[part], additional_forward_args=args,
                                                          feature_mask=mask))  # fmt: skip
    return torch.cat([p.detach() for p in parts])


def shap_distribution(base: torch.Tensor, method: Method, seed: int) -> torch.Tensor:
    """The baselines the SHAP methods draw from: every patch's (DeepLIFT-SHAP: at most
    :data:`SHAP_BASELINES` of them, drawn with ``seed``; at least two, as Captum asks)."""
    if method == "deepliftshap" and len(base) > SHAP_BASELINES:
        base = base[torch.randperm(len(base), generator=torch.Generator().manual_seed(seed))[:SHAP_BASELINES]]
    return base if len(base) > 1 else torch.cat([base, base])


def feature_values(method: Method, attribution: torch.Tensor, features: Sequence[Feature]) -> torch.Tensor:
    """(N, F): a feature's attribution per patch (ablation: the output change of its mask)."""
    if method == "ablation":
        return torch.stack([attribution[:, f.channels[0], 0, 0] for f in features], dim=1)
    per_channel = attribution.sum(dim=(2, 3))
    return torch.stack([per_channel[:, list(f.channels)].sum(dim=1) for f in features], dim=1)


def summarise(
    method: Method, head: str, target: str, features: Sequence[Feature], values: np.ndarray
) -> list[Importance]:
    """Rows from per-patch (or per-shuffle) feature values (n, F): shares are L1-normalised per row."""
    magnitude = np.abs(values) if method != "permutation" else np.maximum(values, 0)
    total = magnitude.sum(axis=1, keepdims=True)
    shares = np.divide(magnitude, total, out=np.zeros_like(magnitude), where=total > 0)

    def spread(x: np.ndarray) -> float:
        return float(x.std(ddof=1)) if len(x) > 1 else float("nan")

    return [Importance(method, head, target, f.level, f.name, float(shares[:, i].mean()), spread(shares[:, i]),
                       float(values[:, i].mean()), spread(values[:, i]), len(values))
            for i, f in enumerate(features)]  # fmt: skip


def by_level(features: Sequence[Feature]) -> dict[Level, list[Feature]]:
    """The features of each level present, variables first."""
    levels: dict[Level, list[Feature]] = {}
    for level in get_args(Level):
        chosen = [f for f in features if f.level == level]
        if chosen:
            levels[level] = chosen
    return levels


def attribution_table(
    network: nn.Module,
    task: TaskSpec,
    patches: Patches | Iterable[Patches],
    heads: Sequence[str],
    classes: Mapping[str, Sequence[int]],
    features: Sequence[Feature],
    methods: Sequence[Method],
    settings: Settings = Settings(),
) -> list[Importance]:
    """Every method's importance of every feature for every head and target (module docstring);
    ``patches``: one batch, or batches read one at a time (iterated once per method)."""
    network = network.eval()
    batches = [patches] if isinstance(patches, Patches) else patches
    levels = by_level(features)
    rows: list[Importance] = []
    for method in methods:
        if method == "permutation":
            from seaice_mlflow.core.permutation import permutation_table  # it builds on this module's types

            rows += permutation_table(network, task, batches, heads, classes, features, settings)
            continue
        values: dict[tuple[str, str, Level], list[np.ndarray]] = {}
        for batch in batches:
            for key, part in batch_values(method, network, task, batch, heads, classes, levels, settings):
                values.setdefault(key, []).append(part)
        for name in heads:  # in the order of heads, targets and levels, whichever batch a target first had
            head = task.head(name)
            for target in (ALL, *(head.class_names[c] for c in classes.get(name, ()))):
                for level, chosen in levels.items():
                    if (name, target, level) in values:
                        rows += summarise(method, name, target, chosen, np.concatenate(values[name, target, level]))
    return rows


def batch_values(
    method: Method, network: nn.Module, task: TaskSpec, patches: Patches, heads: Sequence[str],
    classes: Mapping[str, Sequence[int]], levels: Mapping[Level, Sequence[Feature]], settings: Settings,
) -> Iterator[tuple[tuple[str, str, Level], np.ndarray]]:  # fmt: skip
    """((head, target, level), the per-patch feature values (n, F)) of one gradient or ablation
    method on one batch, for every target that has pixels in the batch."""
    for name in heads:
        head = task.head(name)
        model = HeadOutput(network, head).eval()
        for target in targets(head, patches.references[name], task.ignore_index, classes.get(name, ())):
            keep = target.counted
            if not keep.any():
                continue
            sub, inputs = Target(target.name, target.classes[keep], target.weights[keep]), patches.inputs[keep]
            base = baselines(inputs, settings.baseline)
            if method in SHAP:
                base = shap_distribution(base, method, settings.seed + patches.offset)
            gradients = (
                None
                if method == "ablation"
                else _attribute(method, model, inputs, base, sub, None, settings, patches.offset)
            )
            for level, chosen in levels.items():
                attribution = gradients
                if attribution is None:
                    mask = feature_mask(chosen, inputs.shape[1])
                    attribution = _attribute(method, model, inputs, base, sub, mask, settings, patches.offset)
                yield (name, target.name, level), feature_values(method, attribution.detach(), chosen).cpu().numpy()


def feature_mask(features: Sequence[Feature], channels: int) -> torch.Tensor:
    """Captum's feature mask (1, C, 1, 1): each channel's feature number (channels in no feature
    get their own numbers, so they are never ablated together with one)."""
    mask = torch.arange(len(features), len(features) + channels)
    for i, feature in enumerate(features):
        mask[list(feature.channels)] = i
    return mask.view(1, channels, 1, 1)
