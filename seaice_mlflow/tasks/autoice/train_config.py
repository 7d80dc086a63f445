"""The validated training configuration (from click options or the MLproject)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from seaice_mlflow.core.defaults import check_options, check_value
from seaice_mlflow.core.engine import DEVICES
from seaice_mlflow.core.errors import ParameterError, option_name
from seaice_mlflow.core.task import HeadLevel, TaskSpec
from seaice_mlflow.models import ModelSpec, architecture_names, get_architecture, spec_from_options
from seaice_mlflow.models.options import RESNET_DEPTHS, patch_step
from seaice_mlflow.tasks.autoice.augment import Augment
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES, SIC_HEADS, autoice_task
from seaice_mlflow.tasks.autoice.config import LAND_RULES, TrainDefaults
from seaice_mlflow.tasks.autoice.files.metadata import read_season_table
from seaice_mlflow.tasks.autoice.files.variables import parse_variables
from seaice_mlflow.tasks.autoice.patch_targets import PatchRule
from seaice_mlflow.tasks.autoice.strata import parse_where

OPTIMIZERS = ("adamw", "sgd")
SCHEDULERS = ("cosine", "plateau")
#: Options that may differ from the checkpoint's when resuming: where the data, checkpoints and
#: device are, how many workers load patches, and how long to go on. Any other difference would
#: make the resumed run another experiment than the one its params describe, so it is refused.
RESUMABLE = ("store", "resume", "out", "epochs", "early_stopping", "max_minutes", "workers", "device")


def option_value(value: object) -> str:
    """A config value as it is written on the command line (``--amp false``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class TrainConfig(TrainDefaults):
    """Every training setting, checked; the fields (names, defaults, help) are
    :class:`~seaice_mlflow.tasks.autoice.config.TrainDefaults`': the CLI options and the logged params."""

    def __post_init__(self):
        self._check()

    def _check(self) -> None:
        check_options(self)  # every float finite (nan passes every comparison below), the fields' ranges, choices
        choices = {
            "model": architecture_names(),
            "optimizer": OPTIMIZERS,
            "scheduler": SCHEDULERS,
            "sic_head": SIC_HEADS,
            "device": DEVICES,
            "land": LAND_RULES,
        }
        for name, allowed in choices.items():
            check_value(name, getattr(self, name), choices=allowed)
        if self.level == "instance":
            raise ParameterError("model", f"{self.model} is an instance model of photos: train it with "
                                 "`seaice optical train`")  # fmt: skip
        if self.level == "patch" and (self.land == "exclude" or self.border_distance):
            option = "land" if self.land == "exclude" else "border_distance"
            raise ParameterError(option, f"filters the pixels of a segmentation model's patches; the patches of the "
                                 f"classifier {self.model} are chosen by --patch-purity (leave {option_name(option)} "
                                 "at its default)")  # fmt: skip
        check_value("deeplab_depth", self.deeplab_depth, choices=RESNET_DEPTHS)
        positive = ("lr", "epochs", "batches_per_epoch", "batch_size", "restart_epochs", "val_tile", "nproc")
        for name in positive:
            check_value(name, getattr(self, name), minimum=0, min_open=True)
        for name in (
            "weight_decay",
            "momentum",
            "focal_gamma",
            "grad_clip",
            "early_stopping",
            "max_minutes",
            "workers",
        ):
            check_value(name, getattr(self, name), minimum=0)
        for name in ("class_balance", "min_valid"):
            check_value(name, getattr(self, name), minimum=0, maximum=1)
        for name in ("patch_purity", "scene_fraction"):
            check_value(name, getattr(self, name), minimum=0, maximum=1, min_open=True)
        self.patch_rule  # parsed once here, so that a bad --patch-charts raises now
        if not 0 <= self.border_distance <= 255:
            raise ParameterError("border_distance", f"must be between 0 and 255 pixels, got {self.border_distance}")
        if self.patch_size < 16:
            raise ParameterError("patch_size", f"must be at least 16 pixels, got {self.patch_size}")
        # parsed once here, so that a bad value raises now
        self.filters, self.weights, self.weighted_charts, self.input_variables, self.augmentations
        if self.pretrained and not Path(self.pretrained).is_file():
            raise ParameterError("pretrained", f"{self.pretrained} does not exist; give a local ResNet state_dict file")
        parse_where(self.scenes_where)  # the expression; the scenes are chosen when the store is opened
        if self.season_table:
            read_season_table(self.season_table)

    @property
    def filters(self) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in self.unet_filters.split(","))
        except ValueError:
            raise ParameterError("unet_filters", f"{self.unet_filters!r} is not a comma list of integers") from None
        if not values or min(values) < 1:
            raise ParameterError(
                "unet_filters", f"{self.unet_filters!r}: give positive filter counts, e.g. 32,32,64,64"
            )
        return values

    @property
    def weights(self) -> dict[str, float]:
        try:
            values = [float(v) for v in self.task_weights.split(",")]
        except ValueError:
            values = []
        if len(values) != len(CHART_NAMES) or min(values) < 0 or sum(values) == 0:
            raise ParameterError(
                "task_weights", f"{self.task_weights!r}: give three weights >= 0 for SIC,SOD,FLOE, e.g. 1,3,3"
            )
        return dict(zip(CHART_NAMES, values))

    @property
    def weighted_charts(self) -> tuple[str, ...]:
        """Charts whose loss weighs classes by inverse square-root frequency: none, every softmax
        head (``balanced``), or the heads named after ``balanced:`` (e.g. ``balanced:SOD``)."""
        if self.class_weights == "none":
            return ()
        softmax = tuple(h.name for h in self.task.heads if h.kind == "classification")
        kind, colon, named = self.class_weights.partition(":")
        charts = tuple(c.strip() for c in named.split(",")) if colon else softmax
        if kind != "balanced" or not set(charts) <= set(softmax):
            raise ParameterError(
                "class_weights",
                f"{self.class_weights!r}: give none, balanced, or balanced: and "
                f"a comma list of softmax heads among {','.join(softmax)} (e.g. balanced:SOD)",
            )
        return charts

    @property
    def input_variables(self) -> tuple[str, ...]:
        try:
            return parse_variables(self.variables)
        except ValueError as err:
            raise ParameterError("variables", str(err)) from None

    @property
    def augmentations(self) -> Augment:
        try:
            return Augment.parse(self.augment)
        except ValueError as err:
            raise ParameterError("augment", str(err)) from None

    @property
    def patch_rule(self) -> PatchRule:
        """Which store windows train a patch classifier (:mod:`~seaice_mlflow.tasks.autoice.patch_targets`)."""
        charts = tuple(dict.fromkeys(c.strip() for c in self.patch_charts.split(",") if c.strip()))
        if not charts or not set(charts) <= set(CHART_NAMES):
            raise ParameterError("patch_charts", f"{self.patch_charts!r}: give a comma list of "
                                 f"{', '.join(CHART_NAMES)}")  # fmt: skip
        return PatchRule(self.patch_size, patch_step(self.patch_size, self.patch_stride), charts, self.patch_purity)

    @property
    def level(self) -> HeadLevel:
        """pixel: a segmentation model trained on pixels; patch: a classifier trained on homogeneous patches
        (instance, a floe detector of photos, is refused by the checks)."""
        return get_architecture(self.model).level

    @property
    def task(self) -> TaskSpec:
        """The AutoICE task as this model predicts it (``--sic-head``)."""
        return autoice_task(self.sic_head)

    def model_spec(self, in_channels: int) -> ModelSpec:
        """The ``--model`` architecture for the task's heads, its options from the other options."""
        values = {**self.as_params(), "unet_filters": self.filters, "pretrained": self.pretrained or None}
        return spec_from_options(self.model, in_channels, self.task.outputs(), values)

    def as_params(self) -> dict[str, object]:
        """Everything, keyed by option name, for MLflow params and the resolved config artifact."""
        return asdict(self)

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def resume_conflicts(self, trained: dict[str, object]) -> dict[str, tuple[object, object]]:
        """Options (other than :data:`RESUMABLE`) whose value differs from ``trained``, the
        checkpoint's config: name -> (checkpoint's value, this config's value)."""
        given = self.as_params()
        return {
            name: (trained[name], given[name])
            for name in self.option_names()
            if name not in RESUMABLE and name in trained and trained[name] != given[name]
        }
