"""Homogeneous patches of the training store for patch classifiers (no second copy of the data).

A window of ``size`` x ``size`` pixels on a regular grid of step ``stride`` is a training patch
when, for every chart of ``charts`` (``--patch-charts``, SOD by default), one class covers at
least ``purity`` of all its pixels (``--patch-purity``; 1.0 is IceBench's rule: a single class
and no fill). Its label is that class of the first chart. The windows of the grid are distinct,
so no patch repeats (IceBench's extractor saved one window again and again); counts come from
per-class summed-area tables, so a scene costs one read of its charts.

Sample ``i`` is a pure function of (seed, i), as for the pixel models' patches: a window drawn
uniformly from the manifest or, with probability ``class_balance``, a class drawn uniformly and
then one of its windows; flips and quarter turns as ``--augment`` says (zoom and CutMix would
break the homogeneity and are left out). Its inputs are assembled by the same code as every
other patch (the store's channels in the recipe's order) and its charts are the store's, so the
pixel loss over the classifier's spread-out scores trains on the window's own pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from seaice_mlflow.core.engine import decode
from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.core.metrics import confusion_matrix
from seaice_mlflow.core.task import Head
from seaice_mlflow.core.tiling import Window
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES, IGNORE_INDEX
from seaice_mlflow.tasks.autoice.grid import assemble_inputs, take_window
from seaice_mlflow.tasks.autoice.patches import PatchOptions
from seaice_mlflow.tasks.autoice.store import Store, StoreScene


@dataclass(frozen=True)
class PatchRule:
    """Which windows are patches: size, grid step, the charts that must be homogeneous, purity."""

    size: int
    stride: int
    charts: tuple[str, ...] = ("SOD",)
    purity: float = 1.0


@dataclass(frozen=True)
class PatchEntry:
    """One homogeneous window of the manifest and its class (of the rule's first chart)."""

    scene_id: str
    row: int
    col: int
    label: int

    def window(self, size: int) -> Window:
        return Window(self.row, self.col, size, size)


def window_counts(chart: np.ndarray, value: int, size: int, stride: int) -> np.ndarray:
    """Pixels equal to ``value`` in every ``size`` window of the grid of step ``stride`` (rows x cols)."""
    table = np.zeros((chart.shape[0] + 1, chart.shape[1] + 1), np.int64)
    table[1:, 1:] = np.cumsum(np.cumsum(chart == value, axis=0), axis=1)
    r = np.arange(0, chart.shape[0] - size + 1, stride)
    c = np.arange(0, chart.shape[1] - size + 1, stride)
    return (
        table[np.ix_(r + size, c + size)]
        - table[np.ix_(r, c + size)]
        - table[np.ix_(r + size, c)]
        + table[np.ix_(r, c)]
    )


def homogeneous_windows(charts: dict[str, np.ndarray], rule: PatchRule, n_classes: dict[str, int]) -> list[tuple]:
    """(row, col, label) of every window of the grid whose charts are homogeneous under ``rule``."""
    needed = rule.purity * rule.size * rule.size
    labels = None
    for chart in rule.charts:
        counts = np.stack([window_counts(charts[chart], k, rule.size, rule.stride) for k in range(n_classes[chart])])
        best = counts.argmax(axis=0)
        ok = counts.max(axis=0) >= needed
        labels = np.where(ok, best, -1) if labels is None else np.where(ok & (labels >= 0), labels, -1)
    if labels is None or labels.size == 0:
        return []
    rows, cols = np.nonzero(labels >= 0)
    return [(int(i * rule.stride), int(j * rule.stride), int(labels[i, j])) for i, j in zip(rows, cols)]


def patch_manifest(scenes: Sequence[StoreScene], rule: PatchRule, n_classes: dict[str, int]) -> list[PatchEntry]:
    """The homogeneous windows of ``scenes``, scene by scene, row by row."""
    entries = []
    for scene in scenes:
        stack = scene.read_charts()
        charts = {name: stack[k] for k, name in enumerate(CHART_NAMES)}
        windows = homogeneous_windows(charts, rule, n_classes)
        entries += [PatchEntry(scene.scene_id, r, c, label) for r, c, label in windows]
    return entries


class HomogeneousPatchDataset:
    """Patches of the manifest of the store's ``split`` scenes, as :class:`~.patches.PatchDataset`
    serves them to the loader (``write_batch``)."""

    def __init__(self, store: Store, options: PatchOptions, rule: PatchRule, n_classes: dict[str, int],
                 seed: int = 0, split: str = "train"):  # fmt: skip
        self.scenes = {s.scene_id: s for s in store.scenes(split)}
        if not self.scenes:
            raise ParameterError("store", f"{store.root} has no {split} scenes")
        self.options, self.rule, self.seed = options, rule, seed
        self.manifest = patch_manifest(list(self.scenes.values()), rule, n_classes)
        if not self.manifest:
            raise ParameterError("patch_purity", f"no {rule.size} px window of the {split} scenes of {store.root} has "
                                 f"one {'/'.join(rule.charts)} class on {rule.purity:.0%} of its pixels; lower "
                                 "--patch-purity or --patch-size")  # fmt: skip
        labels = np.array([e.label for e in self.manifest])
        self.by_class = [np.flatnonzero(labels == k) for k in np.unique(labels)]

    def entry(self, rng: np.random.Generator) -> PatchEntry:
        if self.options.class_balance and rng.random() < self.options.class_balance:
            members = self.by_class[int(rng.integers(len(self.by_class)))]
            return self.manifest[int(members[int(rng.integers(len(members)))])]
        return self.manifest[int(rng.integers(len(self.manifest)))]

    def write_batch(self, indices: Sequence[int], image: np.ndarray, charts: np.ndarray) -> None:
        """Write samples ``indices`` into ``image`` (B, C, P, P) and ``charts`` (B, 3, P, P)."""
        size, augment = self.rule.size, self.options.augment
        for i, index in enumerate(indices):
            rng = np.random.default_rng([self.seed, int(index)])
            entry = self.entry(rng)
            scene, window = self.scenes[entry.scene_id], entry.window(size)
            rows, cols, transpose = augment.geometry(size, size, rng)
            assemble_inputs(scene, self.options.variables, window, rows=rows, cols=cols, transpose=transpose,
                            out=image[i])  # fmt: skip
            window_charts = scene.read_charts(window)
            for k in range(len(CHART_NAMES)):
                take_window(window_charts[k], rows, cols, transpose, out=charts[i, k])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """One sample, as :meth:`PatchDataset.__getitem__` gives it."""
        size = self.rule.size
        image = np.empty((1, len(self.options.variables), size, size), np.float32)
        charts = np.full((1, len(CHART_NAMES), size, size), IGNORE_INDEX, np.uint8)
        self.write_batch([index], image, charts)
        sample = {"image": torch.from_numpy(image[0]), "index": torch.tensor(int(index))}
        sample.update({chart: torch.from_numpy(charts[0, k]) for k, chart in enumerate(CHART_NAMES)})
        return sample

    def manifest_rows(self) -> list[dict[str, object]]:
        """The manifest as table rows (scene, window, class), as the training run logs it."""
        return [{"scene_id": e.scene_id, "row": e.row, "col": e.col, "size": self.rule.size,
                 "chart": self.rule.charts[0], "class": e.label} for e in self.manifest]  # fmt: skip


def patch_confusion(network: torch.nn.Module, dataset: HomogeneousPatchDataset, head: Head, device: torch.device,
                    batch: int = 64) -> np.ndarray:  # fmt: skip
    """Confusion (256 x 256) of the manifest's labels (the rule's first chart, ``head``) against
    the class the classifier gives each whole patch (no augmentation)."""
    size, variables = dataset.rule.size, dataset.options.variables
    labels, predicted = [], []
    network.eval()
    with torch.no_grad():
        for start in range(0, len(dataset.manifest), batch):
            entries = dataset.manifest[start : start + batch]
            image = np.stack([assemble_inputs(dataset.scenes[e.scene_id], variables, e.window(size)) for e in entries])
            scores = network.classify(torch.from_numpy(image).to(device))[head.name][:, :, 0, 0].float().cpu()
            predicted.append(decode(head, scores.T.numpy()))
            labels += [e.label for e in entries]
    return confusion_matrix(np.array(labels), np.concatenate(predicted), IGNORE_INDEX)
