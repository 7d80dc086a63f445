"""Figures of the optical commands: a photo with its predicted (and reference) mask."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from seaice_mlflow.tasks.autoice.plots import save
from seaice_mlflow.tasks.optical.labels import ClassTable

__all__ = ["overlay", "save"]


def overlay(rgb: np.ndarray, ids: np.ndarray, reference: np.ndarray | None, table: ClassTable, title: str) -> Figure:
    """The photo, the predicted classes over it and, when given, the reference classes (indices)."""
    colours = table.colour_lookup()
    panels = [("photo", rgb), ("predicted", (0.5 * rgb + 0.5 * colours[ids]).astype(np.uint8))]
    if reference is not None:
        by_index = np.zeros((256, 3), np.uint8)  # class index -> colour; 255 (ignored) stays black
        by_index[: len(table.classes)] = table.colours
        shown = by_index[reference]
        panels.append(("reference", (0.5 * rgb + 0.5 * shown).astype(np.uint8)))
    figure = Figure(figsize=(4 * len(panels), 3.4))
    for ax, (name, image) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        ax.imshow(image)
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    figure.suptitle(title, fontsize=10)
    return figure
