"""Case studies (IceBench's): what each kind varies, its values, and the comparison of the results.

A study trains and scores one model per setting and seed. Each kind varies one thing and holds
the rest at the profile's settings (:data:`~seaice_mlflow.tasks.autoice.steps.main.PROFILES`),
with ``--fixed`` train options on top:

* ``season``: train on one cryospheric season (``melt``, ``freeze``) or calendar season
  (``DJF``, ...), ``all`` for every scene; the test scenes are scored per season as well;
* ``region``: train on one chart region or a ``|`` list of them (``North|NorthEast``), ``all``;
  scored per region;
* ``downsample``: the store's downsampling factor (one store per value); patches keep their size
  in store pixels, so a coarser store's patch covers more ground;
* ``patch-size``: the training patch size in store pixels; with ``--patch-batch pixels`` (the
  default) the batch size is scaled so that a batch holds the profile's pixels (batch x patch
  squared, at least one patch), with ``batch`` the profile's batch size is kept;
* ``data-size``: the fraction of the training scenes (``--scene-fraction``; the smaller sets are
  subsets of the larger ones for one seed);
* ``data-prep``: ``default`` or train options among :data:`DATA_PREP_OPTIONS`
  (``augment=none``, ``border_distance=10``, ``land=exclude``, ``border_distance=10,land=exclude``);
* ``model``: an architecture name (``unet``, ``deeplabv3``, a patch classifier such as ``resnet18``)
  or options among :data:`MODEL_OPTIONS` (``unet_filters=8,8,16,16``,
  ``model=deeplabv3,deeplab_depth=50``, ``model=resnet18,patch_size=32,patch_stride=8``), so one
  study compares pixel and patch models on the same scenes.

``--values`` lists the settings separated by commas, or by semicolons when a setting holds
commas itself (``unet_filters=8,8,16,16;unet_filters=16,32,64,64``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seaice_mlflow.core.errors import ParameterError, option_name
from seaice_mlflow.models import architecture_names
from seaice_mlflow.tasks.autoice.config import PROFILES, STUDY_KINDS, StudyKind
from seaice_mlflow.tasks.autoice.files.metadata import CALENDAR_SEASONS, CRYO_SEASONS
from seaice_mlflow.tasks.autoice.tuning import cast, split_items

DATA_PREP_OPTIONS = ("augment", "border_distance", "land", "min_valid", "class_balance")
MODEL_OPTIONS = ("model", "unet_filters", "deeplab_depth", "encoder", "pretrained", "sic_head", "patch_size",
                 "patch_stride", "patch_charts", "patch_purity")  # fmt: skip
#: The setting of every scene (season and region studies) and the profile's data preparation.
ALL, DEFAULT = "all", "default"
#: The values of each kind when ``--values`` is empty, per profile (``region`` has none: the
#: regions worth comparing depend on the data).
DEFAULT_VALUES: dict[StudyKind, dict[str, str]] = {
    "season": dict.fromkeys(PROFILES, "freeze,melt"),
    "downsample": {"smoke": "1,2", "demo": "2,4,8", "full": "1,2,4,8,10"},
    "patch-size": {"smoke": "32,64", "demo": "32,64,128", "full": "128,256,512"},
    "data-size": {"smoke": "0.5,1", "demo": "0.25,0.5,1", "full": "0.25,0.5,0.75,1"},
    "data-prep": dict.fromkeys(PROFILES, "default;augment=none;border_distance=10;land=exclude"),
    "model": {
        "smoke": "unet_filters=8,8,16,16;unet_filters=16,16,32,32",
        "demo": "unet_filters=8,8,16,16;unet_filters=16,32,64,64;unet_filters=32,32,64,64",
        "full": "unet;model=deeplabv3,deeplab_depth=50;model=deeplabv3,deeplab_depth=152",
    },
}
#: The scores the printed table and the plot show (the CSV has every test metric).
HEADLINE = ("test_combined", "test_SIC_r2", "test_SOD_f1", "test_FLOE_f1")


@dataclass(frozen=True)
class Setting:
    """One setting of a study: how its store and its training differ from the profile's."""

    label: str  # the value as given (normalised)
    train: Mapping[str, Any] = field(default_factory=dict)  # train options it sets
    downsample: int | None = None  # the store's factor (None: the profile's)
    by: tuple[str, ...] = ()  # strata the test scenes are scored by too


def split_values(text: str) -> list[str]:
    """The settings of ``--values``: semicolon separated when the text holds a semicolon, else
    comma separated; each once."""
    items = [v.strip() for v in text.split(";" if ";" in text else ",")]
    items = [v for v in items if v]
    repeated = sorted({v for v in items if items.count(v) > 1})
    if repeated:
        hint = "; separate the settings by semicolons when one holds commas" if "=" in text else ""
        raise ParameterError("values", f"{repeated[0]} is given twice{hint}")
    return items


def setting_error(kind: StudyKind, label: str, err: ParameterError) -> ParameterError:
    """``err`` (about a train option or an expression) as a problem of the setting ``label`` of
    ``--values``: ``option --values: patch-size '8': --patch-size must be at least 16``."""
    inner = "" if err.name == "values" else f"{option_name(err.name)} "
    return ParameterError("values", f"{kind} {label!r}: {inner}{err.problem}")


def _number(kind: StudyKind, text: str, convert: type, check: Callable[[Any], bool], wanted: str) -> Any:
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not check(value):
        raise ParameterError("values", f"{kind} {text!r}: give {wanted}")
    return value


def _options(kind: StudyKind, text: str, allowed: Sequence[str]) -> dict[str, Any]:
    if text == DEFAULT:
        return {}
    try:
        items = split_items(text, "values")
    except ParameterError as err:
        raise ParameterError("values", f"{err.problem} (separate the settings by semicolons when one holds "
                             "commas)") from None  # fmt: skip
    wrong = [name for name in items if name not in allowed]
    if wrong:
        raise ParameterError("values", f"{kind} {text!r}: {wrong[0]} is not one of {', '.join(allowed)} "
                             "(other options go to --fixed)")  # fmt: skip
    return {name: cast(name, value, "values") for name, value in items.items()}


def parse_setting(kind: StudyKind, text: str) -> Setting:
    """The setting ``text`` of a ``kind`` study; a :class:`ParameterError` naming ``--values``."""
    if kind == "season":
        if text == ALL:
            return Setting(text, {"scenes_where": ""}, by=("season",))
        if text in CRYO_SEASONS:
            return Setting(text, {"scenes_where": f"season={text}"}, by=("season",))
        if text in CALENDAR_SEASONS:
            return Setting(text, {"scenes_where": f"calendar_season={text}"}, by=("calendar_season",))
        raise ParameterError("values", f"season {text!r}: give {ALL}, {', '.join(CRYO_SEASONS + CALENDAR_SEASONS)}")
    if kind == "region":
        where = "" if text == ALL else f"region={text}"
        return Setting(text, {"scenes_where": where}, by=("region",))
    if kind == "downsample":
        return Setting(text, downsample=_number(kind, text, int, lambda v: v >= 1, "integer factors of 1 or more"))
    if kind == "patch-size":
        return Setting(text, {"patch_size": _number(kind, text, int, lambda v: v >= 16, "integer sizes of 16 or more")})
    if kind == "data-size":
        fraction = _number(kind, text, float, lambda v: 0 < v <= 1, "fractions above 0 and at most 1")
        return Setting(text, {"scene_fraction": fraction})
    if kind == "data-prep":
        return Setting(text, _options(kind, text, DATA_PREP_OPTIONS))
    if text in architecture_names():
        return Setting(text, {"model": text})
    return Setting(text, _options(kind, text, MODEL_OPTIONS))


def parse_settings(kind: StudyKind, values: str, profile: str) -> list[Setting]:
    """The settings of ``--values`` (or the kind's defaults for ``profile``), in the order given.

    Every study scores the test scenes by the strata of all its settings, so that their tables
    have the same columns."""
    if kind not in STUDY_KINDS:
        raise ParameterError("kind", f"{kind!r} is not one of {', '.join(STUDY_KINDS)}")
    text = values or DEFAULT_VALUES.get(kind, {}).get(profile, "")
    if not text.strip():
        raise ParameterError("values", f"a {kind} study has no default values; give them, e.g. "
                             "--values 'North|NorthEast,CapeFarewell,all'")  # fmt: skip
    settings = [parse_setting(kind, v) for v in split_values(text)]
    by = tuple(dict.fromkeys(key for s in settings for key in s.by))
    return [Setting(s.label, dict(s.train), s.downsample, by) for s in settings]


def parse_seeds(text: str) -> list[int]:
    """The training seeds of ``--seeds`` (comma separated integers, each once)."""
    try:
        seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ParameterError("seeds", f"{text!r}: give comma-separated integers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ParameterError("seeds", f"{text!r}: give one or more different integers, e.g. 0,1,2")
    return seeds


def batch_for_patch(patch_size: int, base_patch: int, base_batch: int) -> int:
    """The batch size that holds ``base_batch`` patches of ``base_patch`` pixels' worth of pixels
    in patches of ``patch_size`` (at least one patch)."""
    return max(1, round(base_batch * (base_patch / patch_size) ** 2))


def ordered_metrics(names: Sequence[str]) -> list[str]:
    """Test metric names: the headline scores first, then the others alphabetically."""
    rest = sorted(n for n in set(names) if n not in HEADLINE)
    return [n for n in HEADLINE if n in names] + rest


@dataclass(frozen=True)
class SettingResult:
    """The finished children of one setting: their runs and test metrics, one entry per seed."""

    setting: Setting
    seeds: tuple[int, ...]
    run_ids: tuple[str, ...]
    metrics: tuple[Mapping[str, float], ...]
    train: Mapping[str, Any] = field(default_factory=dict)  # train options of the setting (all seeds)

    def mean(self, name: str) -> float:
        values = [m[name] for m in self.metrics if name in m]
        return float(np.mean(values)) if values else math.nan

    def spread(self, name: str) -> float:
        """Sample standard deviation over the seeds (nan with one seed)."""
        values = [m[name] for m in self.metrics if name in m]
        return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def table_rows(results: Sequence[SettingResult], shown: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One row per setting: the setting, its seeds and runs, the train options ``shown``, and the
    mean and spread over seeds of every test metric."""
    names = ordered_metrics([n for r in results for m in r.metrics for n in m])
    rows = []
    for r in results:
        row: dict[str, Any] = {"setting": r.setting.label, "seeds": " ".join(map(str, r.seeds)),
                               "runs": " ".join(r.run_ids), **{k: r.train.get(k, "") for k in shown}}  # fmt: skip
        for name in names:
            row[f"{name}_mean"], row[f"{name}_std"] = r.mean(name), r.spread(name)
        rows.append(row)
    return rows


def headline_columns(results: Sequence[SettingResult]) -> list[str]:
    """The scores of the printed table: the headline ones and every stratum's combined score."""
    names = [n for r in results for m in r.metrics for n in m]
    strata = sorted({n for n in names if n.endswith("_combined") and n != "test_combined"})
    return [n for n in HEADLINE if n in names] + strata


def markdown_table(kind: StudyKind, results: Sequence[SettingResult], shown: Sequence[str] = ()) -> str:
    """The comparison as a Markdown table: mean +- spread over seeds of the headline scores."""

    def cell(result: SettingResult, name: str) -> str:
        mean, spread = result.mean(name), result.spread(name)
        if math.isnan(mean):
            return ""
        return f"{mean:.2f}" + ("" if math.isnan(spread) else f" ± {spread:.2f}")

    columns = headline_columns(results)
    lines = [
        "| " + " | ".join([kind, "seeds", *shown, *(c.removeprefix("test_") for c in columns)]) + " |",
        "|" + "---|" * (2 + len(shown) + len(columns)),
    ]
    for r in results:
        extra = [str(r.train.get(k, "")) for k in shown]
        lines.append("| " + " | ".join([r.setting.label, str(len(r.seeds)), *extra, *(cell(r, c) for c in columns)])
                     + " |")  # fmt: skip
    notes = negative_score_notes(results, columns)
    return "\n".join(lines) + "\n" + "".join(f"\n{note}\n" for note in notes)


def negative_score_notes(results: Sequence[SettingResult], columns: Sequence[str]) -> list[str]:
    """What the negative means in ``columns`` say: an R2 below 0 is worse than the mean, and it
    enters the combined scores unclipped (the official score). None when no mean is negative."""
    negative = [c.removeprefix("test_") for c in columns if any(r.mean(c) < 0 for r in results)]  # nan < 0 is False
    r2 = [c for c in negative if c.endswith("_r2")]
    combined = [c for c in negative if c.endswith("combined")]
    notes = []
    if r2:
        notes.append(f"{', '.join(r2)} below 0: the predicted SIC is worse than a chart of the mean SIC of the "
                     "scored pixels everywhere (R2 = 1 - squared error / variance of the reference; 0 is that "
                     "chart, 100 a perfect one).")  # fmt: skip
    if combined:
        notes.append(f"{', '.join(combined)} below 0: the combined score is the official one, the mean of SIC R2, "
                     "SOD F1 and FLOE F1 weighted 2/2/1 with R2 not clipped at 0, so a poor SIC chart can take it "
                     "below 0.")  # fmt: skip
    return notes
