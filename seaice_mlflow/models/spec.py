"""The architecture registry: a spec that names a network, the contract every network meets.

A :class:`ModelSpec` is the architecture's name, the input channels, the output channels per
task head (``TaskSpec.outputs()``) and the architecture's own small options dataclass; it
travels with checkpoints and logged models as JSON. Each :class:`Architecture` entry of
:func:`architectures` pairs a builder with its options type. An options field may name the
command-line option it comes from (``metadata={"option": "unet_filters"}``), so a training
command fills the options of whichever architecture it trains without knowing them.

The registry imports no torch: the options live in :mod:`.options` and each builder's module is
imported when a network is built (:func:`lazy_builder`), so the command line lists architectures
and parses their options in a fraction of a second instead of 2-8 s of torch and torchvision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from importlib import import_module
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from seaice_mlflow.core.errors import ModelSpecError
from seaice_mlflow.core.task import HeadLevel
from seaice_mlflow.models.options import (
    PATCH_BACKBONES,
    SMP_ARCHITECTURES,
    ClassifierOptions,
    DeepLabOptions,
    FloeNetOptions,
    SmpOptions,
    UNetOptions,
)

if TYPE_CHECKING:  # the network modules import torch when a network is built, not with the registry
    from torch import Tensor, nn


@runtime_checkable
class Network(Protocol):
    """What every architecture builds.

    ``network(x)`` maps inputs (N, C, H, W) of any size to ``{head: (N, K, H, W)}``, one output
    per task head with ``ModelSpec.outputs[head]`` channels; inputs are zero-padded to a multiple
    of ``stride`` internally, so tiles starting on multiples of it see a whole-scene pass's
    pooling grid. ``heads[head]`` is the module computing that output and ends in a convolution
    with a bias (:func:`init_output_bias` sets it).
    """

    stride: int
    heads: nn.ModuleDict

    def __call__(self, x: Tensor) -> dict[str, Tensor]: ...


@dataclass(frozen=True)
class Architecture:
    """A registry entry: the options type and the builder ``build(in_channels, outputs, options)``;
    ``level`` says whether it is trained on pixels (segmentation), on whole patches (a classifier)
    or on object instances (a detector of photos, which is no :class:`Network`: see
    :mod:`~seaice_mlflow.models.detection`)."""

    name: str
    options: type
    build: Callable[[int, Mapping[str, int], Any], Network]
    level: HeadLevel = "pixel"

    def option_names(self) -> dict[str, str]:
        """Options field -> the command-line option (snake case) it is filled from."""
        return {f.name: f.metadata.get("option", f.name) for f in fields(self.options)}

    def options_from(self, values: Mapping[str, Any]) -> Any:
        """The options of this architecture from command-line values (missing ones take defaults)."""
        return self.options(
            **{name: values[option] for name, option in self.option_names().items() if option in values}
        )


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a network; stored with checkpoints as JSON (:meth:`as_dict`)."""

    arch: str  # a key of ARCHITECTURES
    in_channels: int
    outputs: Mapping[str, int]  # channels per task head, in head order
    options: Any = None  # the architecture's options dataclass; None: its defaults

    def __post_init__(self) -> None:
        architecture = get_architecture(self.arch)
        if self.options is None:
            object.__setattr__(self, "options", architecture.options())
        elif not isinstance(self.options, architecture.options):
            raise ModelSpecError(
                "model", f"{self.arch} takes {architecture.options.__name__}, not {type(self.options).__name__}"
            )
        if isinstance(self.in_channels, bool) or not isinstance(self.in_channels, int) or self.in_channels < 1:
            raise ModelSpecError("in_channels", f"must be a positive integer, got {self.in_channels!r}")
        if not self.outputs or any(not isinstance(k, int) or k < 1 for k in self.outputs.values()):
            raise ModelSpecError("model", f"output channels per head must be positive integers, got {self.outputs}")
        object.__setattr__(self, "outputs", dict(self.outputs))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples as lists)."""
        options = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.options).items()}
        return {"arch": self.arch, "in_channels": self.in_channels, "outputs": dict(self.outputs), "options": options}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Inverse of :meth:`as_dict`; unknown keys are an error."""
        known = {"arch", "in_channels", "outputs", "options"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelSpecError(
                "model", f"unknown model spec fields {', '.join(unknown)}; expected {', '.join(sorted(known))}"
            )
        architecture = get_architecture(data["arch"])
        options = dict(data.get("options") or {})
        types = {f.name: f for f in fields(architecture.options)}
        extra = sorted(set(options) - set(types))
        if extra:
            raise ModelSpecError(
                "model", f"{data['arch']} has no options {', '.join(extra)}; its options are {', '.join(types)}"
            )
        for name, value in options.items():
            if isinstance(value, list):
                options[name] = tuple(value)
        return cls(data["arch"], data["in_channels"], dict(data["outputs"]), architecture.options(**options))


def lazy_builder(module: str, builder: str, *args: str) -> Callable[[int, Mapping[str, int], Any], Network]:
    """The builder ``builder`` of ``seaice_mlflow.models.<module>`` (``builder(*args)`` when it is a
    factory), imported at the first build: listing the architectures imports no torch."""

    def build(in_channels: int, outputs: Mapping[str, int], options: Any) -> Network:
        found = getattr(import_module(f"seaice_mlflow.models.{module}"), builder)
        return (found(*args) if args else found)(in_channels, outputs, options)

    return build


def architectures() -> dict[str, Architecture]:
    """The registered architectures by name."""
    return {
        "unet": Architecture("unet", UNetOptions, lazy_builder("unet", "build_unet")),
        "deeplabv3": Architecture("deeplabv3", DeepLabOptions, lazy_builder("deeplab", "build_deeplabv3")),
        **{
            name: Architecture(name, SmpOptions, lazy_builder("segmentation", "smp_builder", name))
            for name in SMP_ARCHITECTURES
        },
        **{
            name: Architecture(
                name, ClassifierOptions, lazy_builder("classifiers", "classifier_builder", name), "patch"
            )
            for name in PATCH_BACKBONES
        },
        "maskrcnn": Architecture("maskrcnn", FloeNetOptions, lazy_builder("detection", "build_maskrcnn"), "instance"),
    }


def architecture_names() -> tuple[str, ...]:
    return tuple(architectures())


def takes_option(option: str) -> Callable[[Any], bool]:
    """The ``applies`` rule of a training option that only some architectures take
    (:func:`~seaice_mlflow.core.defaults.option`): it acts when the ``model`` of the options names one whose
    options are filled from it (``unet_filters`` for ``unet``)."""
    return lambda options: option in get_architecture(options.model).option_names().values()


def trains_level(level: HeadLevel) -> Callable[[Any], bool]:
    """The ``applies`` rule of the training options of one kind of architecture (``patch``: the patch
    classifiers', ``instance``: the floe detector's): ``options.model`` is of that ``level``."""
    return lambda options: get_architecture(options.model).level == level


def get_architecture(name: str) -> Architecture:
    """The entry called ``name``, with an error naming the choices."""
    registry = architectures()
    if name not in registry:
        raise ModelSpecError("model", f"unknown model {name!r}; choose among {', '.join(registry)}")
    return registry[name]


def spec_from_options(arch: str, in_channels: int, outputs: Mapping[str, int], values: Mapping[str, Any]) -> ModelSpec:
    """The spec of ``arch`` with its options taken from command-line ``values``.

    An optional option (default None, e.g. ``pretrained``) that only other architectures take is
    refused when given, instead of silently dropped.
    """
    architecture = get_architecture(arch)
    own = set(architecture.option_names().values())
    for other in architectures().values():
        for f in fields(other.options):
            option = f.metadata.get("option", f.name)
            if option not in own and f.default is None and values.get(option) not in (None, ""):
                raise ModelSpecError(option, f"is an option of {other.name}, not of {arch}")
    return ModelSpec(arch, in_channels, outputs, architecture.options_from(values))


def build_model(spec: ModelSpec) -> Network:
    """The network ``spec`` describes, freshly initialised (or with its pretrained backbone)."""
    return get_architecture(spec.arch).build(spec.in_channels, spec.outputs, spec.options)


def load_trained(spec: ModelSpec, state: Mapping[str, Any]) -> Network:
    """The network ``spec`` describes with trained weights ``state``, in eval mode. The backbone's
    ``pretrained`` file of the training is not read (every weight is in ``state``), so a model
    loads where that file is missing."""
    options = spec.options
    if "pretrained" in {f.name for f in fields(options)}:
        options = replace(options, pretrained=None)
    network = build_model(ModelSpec(spec.arch, spec.in_channels, spec.outputs, options))
    network.load_state_dict(state)
    return network.eval()
