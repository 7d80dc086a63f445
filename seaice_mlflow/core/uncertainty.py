"""Per-pixel uncertainty layers of a chart, from what the tiled engine blends, for any task.

A layer is float32 (h, w), named ``<head>_<kind>`` (:func:`layer_name`); the kinds
(:data:`LAYER_KINDS`) and how :class:`~seaice_mlflow.core.engine.ChartPredictor` computes them are
in the engine's docstring. Entropies are divided by ``log K`` (K: the head's classes), so every
classified layer lies in 0..1; a value's spread is in the value's units (class index).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal, get_args

import numpy as np
from scipy.special import entr

#: What a layer says about a pixel of a head: ``confidence`` (maximum probability), ``entropy`` (of
#: the probabilities), ``disagreement`` (the ensemble members' mutual information), ``spread`` (standard
#: deviation of a value) and ``confidence_uncalibrated`` (the confidence at temperature 1).
LayerKind = Literal["confidence", "entropy", "disagreement", "spread", "confidence_uncalibrated"]
LAYER_KINDS: tuple[LayerKind, ...] = get_args(LayerKind)
#: The layers ``uncertainty=True`` asks for: those of a chart product.
PRODUCT_KINDS: tuple[LayerKind, ...] = ("confidence", "entropy", "disagreement", "spread")


def layer_name(head: str, kind: LayerKind) -> str:
    return f"{head}_{kind}"


def layer_kinds(uncertainty: bool | Collection[str]) -> frozenset[LayerKind]:
    """The layer kinds asked: none (False), :data:`PRODUCT_KINDS` (True) or those named (a ValueError
    for a name that is not one of :data:`LAYER_KINDS`)."""
    if isinstance(uncertainty, bool):
        return frozenset(PRODUCT_KINDS if uncertainty else ())
    if isinstance(uncertainty, str):  # one kind named
        uncertainty = (uncertainty,)
    unknown = sorted(set(uncertainty) - set(LAYER_KINDS))
    if unknown:
        raise ValueError(f"unknown uncertainty layers {', '.join(unknown)}; expected some of {', '.join(LAYER_KINDS)}")
    return frozenset(uncertainty)  # type: ignore[arg-type]


def confidence(probabilities: np.ndarray) -> np.ndarray:
    """Maximum probability (...) of probabilities (K, ...)."""
    return probabilities.max(axis=0).astype(np.float32)


def normalised_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Entropy (...) of probabilities (K, ...) divided by ``log K``: 0 for one class, 1 for a uniform
    distribution (0 for a one-class head)."""
    k = probabilities.shape[0]
    if k < 2:
        return np.zeros(probabilities.shape[1:], np.float32)
    return (entr(probabilities).sum(axis=0) / np.log(k)).astype(np.float32)


def mutual_information(mean: np.ndarray, members: np.ndarray) -> np.ndarray:
    """The members' disagreement (...): entropy of their mean probability ``mean`` (K, ...) minus the
    mean of their entropies (``members`` (M, K, ...)), divided by ``log K``; clipped to 0..1."""
    information = normalised_entropy(mean) - np.mean([normalised_entropy(p) for p in members], axis=0)
    return np.clip(information, 0.0, 1.0).astype(np.float32)


def standard_deviation(weight: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Weighted standard deviation (...) from the sums of weights, weighted values and weighted
    squares (float64, ...): ``sqrt(E[v^2] - E[v]^2)``, 0 where rounding makes the variance negative."""
    mean = first / weight
    variance = second / weight - mean * mean
    return np.sqrt(np.maximum(variance, 0.0)).astype(np.float32)
