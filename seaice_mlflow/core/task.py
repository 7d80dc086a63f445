"""The task contract: what a task's model predicts, how each output is decoded, scored and drawn.

A task is a :class:`TaskSpec`, a tuple of :class:`Head` s. The generic layers (tiled inference,
metrics and the score board, the multi-task loss, the model spec, the training loop, the logged
model's signature) take one and iterate its heads; none of them names a head. A model's heads
may decode the same targets differently (the AutoICE SIC regressed on the class index, or
classified): :meth:`TaskSpec.with_kinds` gives the task as a given model predicts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

#: A classification head outputs one score per class (softmax, argmax); a regression head one
#: value, the class index, rounded and clamped to the classes when decoded.
HeadKind = Literal["classification", "regression"]
HEAD_KINDS: tuple[HeadKind, ...] = get_args(HeadKind)
#: Pixel heads give a class map per input; patch heads one class per input patch; instance heads
#: a map of object ids per input (0: no object), e.g. the ice floes of a Mask R-CNN.
HeadLevel = Literal["pixel", "patch", "instance"]
#: Metrics of a head (keys of ``core.metrics.METRICS``); a head's first metric is its score.
MetricName = Literal["r2", "f1", "miou"]


@dataclass(frozen=True)
class Head:
    """One output of a task: its classes, how it is predicted, scored, weighted and drawn."""

    name: str
    class_names: tuple[str, ...]
    kind: HeadKind = "classification"
    level: HeadLevel = "pixel"
    metrics: tuple[MetricName, ...] = ("f1",)
    weight: float = 1.0  # weight in the task's combined score
    loss_weight: float = 1.0  # default weight in the multi-task loss
    colours: tuple[str, ...] = ()  # one "#RRGGBB" per class, for quicklooks
    long_name: str = ""

    def __post_init__(self) -> None:
        if self.kind not in HEAD_KINDS:
            raise ValueError(f"head {self.name}: kind {self.kind!r} is not one of {', '.join(HEAD_KINDS)}")
        if not self.class_names:
            raise ValueError(f"head {self.name}: no classes")
        if self.colours and len(self.colours) != len(self.class_names):
            raise ValueError(f"head {self.name}: {len(self.colours)} colours for {len(self.class_names)} classes")
        if not self.metrics:
            raise ValueError(f"head {self.name}: no metric")

    @property
    def n_classes(self) -> int:
        """Number of real classes (without the ignore value)."""
        return len(self.class_names)

    @property
    def channels(self) -> int:
        """Output channels of a network for this head: 1 for a regression, one per class otherwise."""
        return 1 if self.kind == "regression" else self.n_classes

    @property
    def flag_values(self) -> tuple[int, ...]:
        """CF ``flag_values`` of a class map: the class indices."""
        return tuple(range(self.n_classes))

    @property
    def flag_meanings(self) -> str:
        """CF ``flag_meanings``: class names joined by spaces, words joined by underscores."""
        return " ".join(n.replace(" ", "_").replace("%", "pct") for n in self.class_names)

    @property
    def score_metric(self) -> MetricName:
        """The metric of the head's score (the one the combined score weights)."""
        return self.metrics[0]


@dataclass(frozen=True)
class TaskSpec:
    """A task: its heads in their canonical order and the value of unlabelled target pixels."""

    name: str
    heads: tuple[Head, ...]
    ignore_index: int = 255

    def __post_init__(self) -> None:
        names = [h.name for h in self.heads]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"task {self.name}: head names must be given and distinct, got {names}")
        too_many = [h.name for h in self.heads if h.n_classes > self.ignore_index]
        if too_many:
            raise ValueError(
                f"task {self.name}: heads {', '.join(too_many)} have classes at the ignore index {self.ignore_index}"
            )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.heads)

    def head(self, name: str) -> Head:
        """The head called ``name``, with an error naming the task's heads."""
        for head in self.heads:
            if head.name == name:
                return head
        raise KeyError(f"task {self.name} has no head {name!r}; its heads are {', '.join(self.names)}")

    def outputs(self) -> dict[str, int]:
        """Output channels per head, in head order (what a network for this task must return)."""
        return {h.name: h.channels for h in self.heads}

    def kinds(self) -> dict[str, HeadKind]:
        return {h.name: h.kind for h in self.heads}

    def with_kinds(self, kinds: Mapping[str, HeadKind]) -> TaskSpec:
        """The task with some heads decoded otherwise (e.g. ``{"SIC": "classification"}``)."""
        unknown = sorted(set(kinds) - set(self.names))
        if unknown:
            raise KeyError(f"task {self.name} has no heads {', '.join(unknown)}; its heads are {', '.join(self.names)}")
        return replace(self, heads=tuple(replace(h, kind=kinds.get(h.name, h.kind)) for h in self.heads))

    def check_names(self, values: Mapping[str, Any], what: str) -> None:
        """Refuse keys of ``values`` that are not heads of this task, naming ``what`` they are."""
        unknown = sorted(set(values) - set(self.names))
        if unknown:
            raise ValueError(f"{what}: unknown heads {', '.join(unknown)}; expected {', '.join(self.names)}")
