"""The AutoICE task: the single source of truth for the SIC, SOD and FLOE charts.

Class numbering, names, ignore value, score metrics and weights and display colours follow the
AutoICE starter pack (``utils.py``) and the WMO ice-chart colour code; the loss weights are
MMSeaIce's (the AutoICE winner). Every other module takes these from here, the generic ones
through :data:`AUTOICE` (a :class:`~seaice_mlflow.core.task.TaskSpec`).
"""

from __future__ import annotations

from typing import Literal, get_args

from seaice_mlflow.core.task import Head, TaskSpec

#: Value of masked chart pixels (land, outside the chart, ambiguous polygon, excluded category).
IGNORE_INDEX = 255

#: Colour of the ignore value in quicklooks.
IGNORE_COLOUR = "#FFFFFF"


SIC = Head(
    name="SIC",
    long_name="Sea Ice Concentration [%]",
    class_names=tuple(f"{10 * k}%" for k in range(11)),
    # WMO colour code for total concentration: ice free, 1-3/10, 4-6/10, 7-8/10, 9-10/10.
    colours=(
        "#96C8FF",
        "#8CFFA0",
        "#8CFFA0",
        "#8CFFA0",
        "#FFFF00",
        "#FFFF00",
        "#FFFF00",
        "#FF7D07",
        "#FF7D07",
        "#FF0000",
        "#FF0000",
    ),
    kind="regression",
    metrics=("r2",),
    weight=2,
    loss_weight=1.0,
)

SOD = Head(
    name="SOD",
    long_name="Stage of Development",
    class_names=(
        "open water",
        "new ice",
        "young ice",
        "thin first-year ice",
        "thick first-year ice",
        "old ice",
    ),
    # WMO colour code: water, new ice, young ice, thin FYI, FYI, old ice.
    colours=("#96C8FF", "#F0D2FA", "#AA28F0", "#9BD200", "#FFFF00", "#B46432"),
    metrics=("f1",),
    weight=2,
    loss_weight=3.0,
)

FLOE = Head(
    name="FLOE",
    long_name="Floe Size",
    class_names=(
        "open water",
        "cake ice",
        "small floe",
        "medium floe",
        "big floe",
        "vast floe",
        "bergs",
    ),
    colours=("#96C8FF", "#F7FCB9", "#ADDD8E", "#41AB5D", "#238443", "#005A32", "#8C510A"),
    metrics=("f1",),
    weight=1,
    loss_weight=3.0,
)

#: The AutoICE task as the default model predicts it (SIC regressed on the class index).
AUTOICE = TaskSpec("autoice", (SIC, SOD, FLOE), ignore_index=IGNORE_INDEX)

#: How SIC is predicted: one channel regressing the class index (MSE), or an 11-way softmax (CE).
SicHead = Literal["regression", "classification"]
SIC_HEADS: tuple[SicHead, ...] = get_args(SicHead)

#: The three charts in their canonical order, keyed by name.
CHARTS: dict[str, Head] = {c.name: c for c in AUTOICE.heads}

#: Chart names in canonical order.
CHART_NAMES: tuple[str, ...] = tuple(CHARTS)

#: Valid-pixel class frequencies over the 513 AI4Arctic v2 training scenes (spec section 4),
#: and the masked fraction of each chart.
REAL_CLASS_FREQUENCIES: dict[str, tuple[float, ...]] = {
    "SIC": (57.0, 0.42, 2.16, 1.68, 1.18, 1.89, 1.19, 2.22, 3.32, 6.55, 22.4),
    "SOD": (66.5, 1.78, 2.52, 2.12, 14.8, 12.2),
    "FLOE": (66.8, 0.37, 2.37, 4.01, 5.99, 20.3, 0.15),
}
REAL_MASKED_PERCENT: dict[str, float] = {"SIC": 39.9, "SOD": 48.5, "FLOE": 48.7}


def autoice_task(sic_head: SicHead = "regression") -> TaskSpec:
    """The AutoICE task as a model with this SIC head predicts it."""
    if sic_head not in SIC_HEADS:
        raise ValueError(f"unknown SIC head {sic_head!r}; choose among {', '.join(SIC_HEADS)}")
    return AUTOICE.with_kinds({"SIC": sic_head})


def get_chart(name: str) -> Head:
    """The chart called ``name`` (case-insensitive), with a clear error for unknown names."""
    chart = CHARTS.get(name.upper())
    if chart is None:
        raise KeyError(f"unknown chart {name!r}; expected one of {', '.join(CHART_NAMES)}")
    return chart
