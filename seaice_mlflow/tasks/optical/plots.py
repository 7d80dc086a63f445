"""Figures of the optical commands: a photo with its predicted (and reference) mask, and a legend of
the class colours shown (only the classes present, as the chart maps' legends; pixels left out of the
reference are drawn black and named "not labelled")."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from seaice_mlflow.tasks.autoice.plots import save
from seaice_mlflow.tasks.optical.labels import IGNORE, ClassTable

__all__ = ["overlay", "save"]


def overlay(rgb: np.ndarray, ids: np.ndarray, reference: np.ndarray | None, table: ClassTable, title: str) -> Figure:
    """The photo, the predicted classes (label ids) over it and, when given, the reference classes
    (indices), with a legend of the classes either shows."""
    colours = table.colour_lookup()
    panels = [("photo", rgb), ("predicted", (0.5 * rgb + 0.5 * colours[ids]).astype(np.uint8))]
    shown = {table.index_of(int(i)) for i in np.unique(ids) if int(i) in table.ids}
    if reference is not None:
        by_index = np.zeros((256, 3), np.uint8)  # class index -> colour; 255 (ignored) stays black
        by_index[: len(table.classes)] = table.colours
        panels.append(("reference", (0.5 * rgb + 0.5 * by_index[reference]).astype(np.uint8)))
        shown |= {int(k) for k in np.unique(reference) if k < len(table.classes)}
    figure = Figure(figsize=(4 * len(panels), 3.8), layout="constrained")
    for ax, (name, image) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        ax.imshow(image)
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    handles = [Patch(facecolor=np.array(table.classes[k].colour) / 255, edgecolor="0.3", label=table.classes[k].name)
               for k in sorted(shown)]  # fmt: skip
    if reference is not None and (reference == IGNORE).any():
        handles.append(Patch(facecolor="black", edgecolor="0.3", label="not labelled"))
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize=8, frameon=False)
    figure.suptitle(title, fontsize=10)
    return figure
