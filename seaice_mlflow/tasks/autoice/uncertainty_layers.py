"""The uncertainty layers of a chart product (``seaice predict --uncertainty``), as the products store them.

The engine's layers (:mod:`~seaice_mlflow.core.uncertainty`, float32 0..1 or class-index units)
become uint8 percent (0-100, rounded), 255 where the scene has no SAR data, in every product: a
netCDF variable, a GeoTIFF and per-polygon means of the vector charts. Each is named as the
engine names it:

* ``<chart>_confidence``: the chart's maximum class probability (with the model's temperatures);
* ``<chart>_entropy``: the entropy of the class probabilities divided by ``log K`` (0: one class
  certain, 100: all K classes equally likely);
* ``<chart>_disagreement`` (an ensemble): the members' mutual information divided by ``log K``;
* ``<chart>_spread`` (a chart predicted as a value, the regressed SIC): the standard deviation of the
  value across tile overlaps and ensemble members, in percent of the class range 0..K-1; for SIC that
  is percent concentration (10 x the class index).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from seaice_mlflow.core.uncertainty import LAYER_KINDS, LayerKind, layer_name
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES, CHARTS, IGNORE_INDEX

FILL = IGNORE_INDEX
#: The attribute (tag, metadata key) of every product naming the scene's layers, space separated: which
#: layers a model gives is known once it has charted, and a re-run checks each layer's GeoTIFF.
LAYERS_ATTRIBUTE = "uncertainty_layers"


@dataclass(frozen=True)
class ProductLayer:
    """One uncertainty layer of a scene as stored: uint8 percent, :data:`FILL` outside the swath."""

    name: str
    chart: str
    kind: LayerKind
    values: np.ndarray
    long_name: str
    comment: str


def describe(chart: str, kind: LayerKind) -> tuple[str, str]:
    """Long name and comment of a layer."""
    info = CHARTS[chart]
    k = info.n_classes
    return {
        "confidence": (
            f"confidence of the predicted {info.long_name} class (its probability, the maximum)",
            "calibrated with the model's temperatures (temperature scaling on its validation scenes)",
        ),
        "confidence_uncalibrated": (
            f"confidence of the predicted {info.long_name} class before calibration (temperature 1)",
            "the maximum of the uncalibrated class probabilities",
        ),
        "entropy": (
            f"normalised entropy of the {info.long_name} class probabilities",
            f"entropy / log({k}): 0 one class certain, 100 all {k} classes equally likely",
        ),
        "disagreement": (
            f"disagreement of the ensemble members on {info.long_name} (mutual information)",
            f"entropy of the members' mean probability minus their mean entropy, / log({k}); 0: the members agree",
        ),
        "spread": (
            f"spread of the predicted {info.long_name} value across tile overlaps and ensemble members",
            f"weighted standard deviation in percent of the class range 0..{k - 1} "
            f"(for SIC: percent concentration, 10 x the class index)",
        ),
    }[kind]


def as_percent(values: np.ndarray, scale: float, valid: np.ndarray) -> np.ndarray:
    """``values`` x ``scale`` as uint8 0-100 (rounded), :data:`FILL` where ``valid`` is False."""
    percent = np.rint(np.clip(np.asarray(values, dtype=np.float32) * scale, 0.0, 100.0)).astype(np.uint8)
    percent[~valid] = FILL
    return percent


def product_layers(layers: Mapping[str, np.ndarray] | None, valid: np.ndarray) -> list[ProductLayer]:
    """The engine's layers of a scene (``ChartPrediction.uncertainty``) as the products store them,
    chart by chart; none for None."""
    out = []
    for chart in CHART_NAMES:
        for kind in LAYER_KINDS:
            name = layer_name(chart, kind)
            if layers and name in layers:
                scale = 100.0 / max(CHARTS[chart].n_classes - 1, 1) if kind == "spread" else 100.0
                values = as_percent(layers[name], scale, valid)
                out.append(ProductLayer(name, chart, kind, values, *describe(chart, kind)))
    return out
