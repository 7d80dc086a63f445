"""Ice-chart definitions: the single source of truth for SIC, SOD and FLOE.

Class numbering, names, ignore value, score weights and display colours follow the
AutoICE starter pack (``utils.py``) and the WMO ice-chart colour code. Every other
module takes these from here.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Value of masked chart pixels (land, outside the chart, ambiguous polygon, excluded category).
IGNORE_INDEX = 255

#: Colour of the ignore value in quicklooks.
IGNORE_COLOUR = "#FFFFFF"


@dataclass(frozen=True)
class Chart:
    """One ice chart: its classes, how it is scored and how it is drawn."""

    name: str
    long_name: str  # also the files' ``polygon`` attribute
    class_names: tuple[str, ...]
    colours: tuple[str, ...]
    metric: str  # "r2" on class indices or "f1" (weighted by reference support)
    weight: int  # weight in the combined score

    @property
    def n_classes(self) -> int:
        """Number of real classes (without the ignore value)."""
        return len(self.class_names)

    @property
    def flag_values(self) -> tuple[int, ...]:
        return tuple(range(self.n_classes))

    @property
    def flag_meanings(self) -> str:
        """CF ``flag_meanings``: class names joined by spaces, words joined by underscores."""
        return " ".join(n.replace(" ", "_").replace("%", "pct") for n in self.class_names)


SIC = Chart(
    name="SIC",
    long_name="Sea Ice Concentration [%]",
    class_names=tuple(f"{10 * k}%" for k in range(11)),
    # WMO colour code for total concentration: ice free, 1-3/10, 4-6/10, 7-8/10, 9-10/10.
    colours=(
        "#96C8FF",
        "#8CFFA0", "#8CFFA0", "#8CFFA0",
        "#FFFF00", "#FFFF00", "#FFFF00",
        "#FF7D07", "#FF7D07",
        "#FF0000", "#FF0000",
    ),
    metric="r2",
    weight=2,
)

SOD = Chart(
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
    metric="f1",
    weight=2,
)

FLOE = Chart(
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
    metric="f1",
    weight=1,
)

#: The three charts in their canonical order, keyed by name.
CHARTS: dict[str, Chart] = {c.name: c for c in (SIC, SOD, FLOE)}

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


def get_chart(name: str) -> Chart:
    """The chart called ``name`` (case-insensitive), with a clear error for unknown names."""
    chart = CHARTS.get(name.upper())
    if chart is None:
        raise KeyError(f"unknown chart {name!r}; expected one of {', '.join(CHART_NAMES)}")
    return chart
