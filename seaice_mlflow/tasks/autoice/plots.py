"""Figures logged as MLflow artifacts: class histograms, learning curves, quicklooks, confusions,
reliability diagrams.

Figures are built with matplotlib's object API (no pyplot state) and saved atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from seaice_mlflow.core.io import atomic_path
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES, CHARTS, IGNORE_COLOUR, IGNORE_INDEX, REAL_CLASS_FREQUENCIES
from seaice_mlflow.tasks.autoice.strata import StratumScore

#: The legend entry of masked pixels (255).
NO_DATA_LABEL = "no data (land, off swath)"

if TYPE_CHECKING:  # the study module imports Optuna, which a plot does not need
    from seaice_mlflow.core.attribution import Importance
    from seaice_mlflow.core.calibration import ReliabilityTable
    from seaice_mlflow.tasks.autoice.study import SettingResult


def save(figure: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write a figure as PNG (complete file or none)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    return path


def class_histograms(histograms: Mapping[str, Mapping[str, Sequence[int]]]) -> Figure:
    """Class frequencies (% of valid pixels) per chart for each split, next to the real data's.

    ``histograms[split][chart]`` holds class counts with the masked count last.
    """
    figure = Figure(figsize=(15, 4))
    axes = figure.subplots(1, len(CHART_NAMES))
    splits = list(histograms)
    width = 0.8 / (len(splits) + 1)
    for ax, chart in zip(axes, CHART_NAMES):
        n = CHARTS[chart].n_classes
        x = np.arange(n)
        for i, split in enumerate(splits):
            counts = np.asarray(histograms[split][chart][:n], dtype=float)
            ax.bar(x + i * width, 100 * counts / max(counts.sum(), 1), width, label=split)
        ax.bar(
            x + len(splits) * width,
            REAL_CLASS_FREQUENCIES[chart],
            width,
            label="AI4Arctic (real)",
            color="lightgray",
            edgecolor="gray",
        )
        ax.set_xticks(x + 0.4 - width / 2, [str(k) for k in range(n)])
        ax.set_title(f"{chart}: {CHARTS[chart].long_name}")
        ax.set_xlabel("class")
        ax.set_ylabel("% of valid pixels")
        ax.set_yscale("log")
    axes[0].legend()
    return figure


def chart_colormap(chart: str) -> tuple[ListedColormap, BoundaryNorm]:
    """Discrete colours of a chart's classes, with the ignore value drawn as :data:`IGNORE_COLOUR`."""
    colours = list(CHARTS[chart].colours)
    cmap = ListedColormap(colours).with_extremes(over=IGNORE_COLOUR)
    return cmap, BoundaryNorm(np.arange(len(colours) + 1) - 0.5, len(colours))


def class_legend(
    ax,
    chart: str,
    values: Sequence[np.ndarray],
    no_data_colour: str = IGNORE_COLOUR,
    class_names: Sequence[str] | None = None,
    **placement: object,
) -> None:
    """A legend titled ``chart`` under ``ax``: the classes present in any of ``values`` (uint8 class maps) in
    the chart's colours, then the no-data colour; ``placement``: ``Axes.legend`` keywords to override."""
    cmap, norm = chart_colormap(chart)
    names = tuple(class_names or CHARTS[chart].class_names)
    counts = sum(np.bincount(np.asarray(v, dtype=np.uint8).ravel(), minlength=256) for v in values)
    handles = [Patch(facecolor=cmap(norm(k)), edgecolor="0.3", label=names[k]) for k in range(len(names)) if counts[k]]
    handles.append(Patch(facecolor=no_data_colour, edgecolor="0.3", label=NO_DATA_LABEL))
    options = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.02), "ncols": 2, "fontsize": 7, "title_fontsize": 8,
               "frameon": False, **placement}  # fmt: skip
    ax.legend(handles=handles, title=chart, **options)


def draw_chart(ax, chart: str, values: np.ndarray, title: str) -> None:
    cmap, norm = chart_colormap(chart)
    shown = np.where(values == IGNORE_INDEX, len(CHARTS[chart].colours) + 1, values).astype(np.float32)
    ax.imshow(shown, cmap=cmap, norm=norm, interpolation="nearest")
    ax.set_title(title)
    ax.set_axis_off()


def quicklook(
    sar: np.ndarray,
    charts: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray] | None,
    title: str,
    max_pixels: int = 800,
) -> Figure:
    """HH backscatter, then prediction and reference of each chart, side by side, with a legend of each
    chart's classes (those in either) under its column."""
    step = max(1, int(np.ceil(max(sar.shape) / max_pixels)))
    rows = 2 if reference else 1
    figure = Figure(figsize=(4 * (1 + len(CHART_NAMES)), 4 * rows))
    axes = figure.subplots(rows, 1 + len(CHART_NAMES), squeeze=False)
    hh = np.where(sar == 0, np.nan, sar)[::step, ::step]
    axes[0, 0].imshow(hh, cmap="gray", vmin=-2.5, vmax=2.5, interpolation="nearest")
    axes[0, 0].set_title("HH (z-score)")
    axes[0, 0].set_axis_off()
    if rows == 2:
        axes[1, 0].set_axis_off()
    for j, chart in enumerate(CHART_NAMES, start=1):
        draw_chart(axes[0, j], chart, charts[chart][::step, ::step], f"{chart} predicted")
        if reference:
            draw_chart(axes[1, j], chart, reference[chart][::step, ::step], f"{chart} reference")
        class_legend(axes[-1, j], chart, [charts[chart], *([reference[chart]] if reference else [])])
    figure.suptitle(title)
    return figure


def learning_curves(history: Sequence[Mapping[str, float]]) -> Figure:
    """Training loss and validation scores per epoch."""
    figure = Figure(figsize=(12, 4))
    loss_ax, score_ax = figure.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    loss_ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train loss")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.legend()
    for key in ("val_combined", "val_SIC_r2", "val_SOD_f1", "val_FLOE_f1"):
        values = [h.get(key, np.nan) for h in history]
        score_ax.plot(epochs, values, marker="o", label=key)
    score_ax.set_xlabel("epoch")
    score_ax.set_ylabel("score (%)")
    score_ax.legend()
    return figure


def confusion_matrices(confusions: Mapping[str, np.ndarray], normalise: bool) -> Figure:
    """Reference (rows) x prediction (columns) per chart, as counts or row-normalised."""
    figure = Figure(figsize=(6 * len(CHART_NAMES), 5))
    axes = figure.subplots(1, len(CHART_NAMES))
    for ax, chart in zip(axes, CHART_NAMES):
        n = CHARTS[chart].n_classes
        cm = np.asarray(confusions[chart], dtype=float)[:n, :n]
        if normalise:
            cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        image = ax.imshow(cm, cmap="Blues")
        for (i, j), value in np.ndenumerate(cm):
            ax.text(j, i, f"{value:.2f}" if normalise else f"{int(value)}", ha="center", va="center", fontsize=6)
        ax.set_xlabel("predicted")
        ax.set_ylabel("reference")
        ax.set_title(f"{chart} ({'row-normalised' if normalise else 'pixels'})")
        figure.colorbar(image, ax=ax, fraction=0.046)
    return figure


def reliability_diagram(tables: Mapping[str, Mapping[str, ReliabilityTable]]) -> Figure:
    """Accuracy against mean confidence per confidence bin of each chart (``tables[chart][variant]``,
    e.g. ``uncalibrated`` and ``calibrated``), the diagonal of perfect calibration, the ECE in the legend."""
    charts = list(tables) or [""]
    figure = Figure(figsize=(5 * len(charts), 5))
    axes = np.atleast_1d(figure.subplots(1, len(charts)))
    for ax, chart in zip(axes, charts):
        ax.plot([0, 1], [0, 1], color="gray", linestyle="--", label="perfect calibration")
        for variant, table in tables.get(chart, {}).items():
            filled = table.counts > 0
            ax.plot(
                table.mean_confidence()[filled],
                table.accuracy()[filled],
                marker="o",
                label=f"{variant} (ECE {table.ece():.2f} %)",
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (maximum probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{chart}: reliability" if chart else "no classified chart")
        ax.legend(loc="upper left")
    return figure


def strata_scores(strata: Sequence[StratumScore]) -> Figure:
    """Combined and per-chart scores of each stratum, one panel per stratification (season,
    region, ...); a melt/freeze panel says when its labels are the month/latitude approximation."""
    keys = list(dict.fromkeys(s.key for s in strata))
    figure = Figure(figsize=(max(6.0, 1.1 * len(strata) + 2.5 * len(keys)), 4.5))
    axes = figure.subplots(1, max(len(keys), 1), squeeze=False)[0]
    for ax, key in zip(axes, keys):
        group = [s for s in strata if s.key == key]
        heads = group[0].scores.task.heads
        series = [("combined", [s.scores.combined for s in group])]
        series += [(f"{h.name} {h.score_metric}", [s.scores.charts[h.name] for s in group]) for h in heads]
        x = np.arange(len(group))
        width = 0.8 / len(series)
        for i, (label, values) in enumerate(series):
            ax.bar(x + i * width, values, width, label=label)
        ax.set_xticks(x + 0.4 - width / 2, [f"{s.value}\n({len(s.scenes)} scenes)" for s in group], fontsize=8)
        approximate = key == "season" and any("approximation" in s.season_sources for s in group)
        ax.set_title(f"{key}" + (" (melt/freeze: month/latitude approximation)" if approximate else ""), fontsize=9)
        ax.set_ylabel("score (%)")
        low = min([0.0, *(v for _, values in series for v in values if np.isfinite(v))])
        ax.set_ylim(low, 100)
    if keys:
        axes[0].legend(fontsize=8)
    return figure


def study_scores(kind: str, results: Sequence[SettingResult], columns: Sequence[str], approximate: bool) -> Figure:
    """Scores against the setting of a study: the mean over seeds with the spread (one standard
    deviation) as error bars, one line per score in ``columns``."""
    figure = Figure(figsize=(max(6.0, 1.2 * len(results) + 3), 4.5))
    ax = figure.subplots()
    x = np.arange(len(results))
    for name in columns:
        means = [r.mean(name) for r in results]
        spreads = [0.0 if np.isnan(r.spread(name)) else r.spread(name) for r in results]
        ax.errorbar(x, means, yerr=spreads, marker="o", capsize=3, label=name.removeprefix("test_"))
    ax.set_xticks(x, [r.setting.label.replace(",", ",\n") if len(r.setting.label) > 14 else r.setting.label
                      for r in results], fontsize=8)  # fmt: skip
    seeds = sorted({len(r.seeds) for r in results})
    note = " (melt/freeze: month/latitude approximation)" if approximate else ""
    ax.set_title(f"{kind} study: mean ± sd over {'/'.join(map(str, seeds))} seed(s){note}", fontsize=9)
    ax.set_xlabel(kind)
    ax.set_ylabel("test score (%)")
    ax.legend(fontsize=8)
    return figure


def importance_grid(rows: Sequence[Importance], charts: Sequence[str], level: str, title: str) -> Figure:
    """One panel per chart: each feature's importance (mean share over patches, with its spread)
    for the chart as a whole, one bar per method; features sorted by their mean over methods."""
    methods = list(dict.fromkeys(r.method for r in rows))
    n_features = len({r.feature for r in rows if r.level == level})
    figure = Figure(figsize=(6.5 * max(len(charts), 1), 1.2 + 0.36 * max(n_features, 1)), layout="constrained")
    axes = figure.subplots(1, max(len(charts), 1), squeeze=False)[0]
    height = 0.8 / max(len(methods), 1)
    for ax, chart in zip(axes, charts):
        chosen = [r for r in rows if r.head == chart and r.level == level and r.target == "all"]
        features = sorted({r.feature for r in chosen},
                          key=lambda f: -np.mean([r.share for r in chosen if r.feature == f]))  # fmt: skip
        y = np.arange(len(features))
        for i, method in enumerate(methods):
            found = {r.feature: r for r in chosen if r.method == method}
            shares = [found[f].share if f in found else np.nan for f in features]
            spreads = [0.0 if f not in found or np.isnan(found[f].share_spread) else found[f].share_spread
                       for f in features]  # fmt: skip
            ax.barh(y + i * height, shares, height, xerr=spreads, label=method,
                    error_kw={"elinewidth": 0.6, "capsize": 1.5, "ecolor": "0.35"})  # fmt: skip
        ax.set_yticks(y + 0.4 - height / 2, features, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(left=0)
        ax.set_xlabel("share of the importance")
        ax.set_title(chart)
    axes[0].legend(fontsize=8, loc="lower right")
    figure.suptitle(f"{title}\nshare of |attribution| summed over a patch (permutation: of the score drop), "
                    "mean and sd over patches", fontsize=9)  # fmt: skip
    return figure


def cam_overlays(hh: np.ndarray, maps: np.ndarray, labels: Sequence[str], title: str) -> Figure:
    """Each Grad-CAM map (scaled to its 99th percentile) over the HH quicklook, inside the swath."""
    figure = Figure(figsize=(3.6 * len(labels), 3.8))
    axes = figure.subplots(1, len(labels), squeeze=False)[0]
    background = np.where(hh == 0, np.nan, hh)
    for ax, cam, label in zip(axes, maps, labels):
        top = float(np.percentile(cam, 99)) if np.any(cam > 0) else 1.0
        ax.imshow(background, cmap="gray", vmin=-2.5, vmax=2.5, interpolation="nearest")
        shown = np.where(np.isnan(background), np.nan, np.clip(cam / (top or 1.0), 0, 1))  # the swath only
        ax.imshow(shown, cmap="inferno", alpha=0.55, vmin=0, vmax=1)
        ax.set_title(label, fontsize=8)
        ax.set_axis_off()
    figure.suptitle(title, fontsize=10)
    return figure
