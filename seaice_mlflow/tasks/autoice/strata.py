"""Stratified scores (per cryospheric season, calendar season, chart region, ice service) and
choosing scenes by the same metadata.

A stratum's score pools the confusion matrices of its scenes exactly as the official score pools
all scenes, so it equals the official score of that subset of scenes alone.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from seaice_mlflow.core.errors import ParameterError, SeaIceError
from seaice_mlflow.core.io import atomic_path
from seaice_mlflow.core.metrics import ScoreBoard, Scores
from seaice_mlflow.tasks.autoice.files.metadata import (
    CALENDAR_SEASONS,
    CRYO_SEASONS,
    SERVICES,
    SceneMetadata,
    SeasonSource,
    SeasonTable,
    read_metadata_files,
)
from seaice_mlflow.tasks.autoice.files.naming import CIS_REGIONS, DMI_REGIONS, UNKNOWN_REGION

#: What scenes are grouped by: ``season`` is melt/freeze, ``calendar_season`` DJF/MAM/JJA/SON.
StratumKey = Literal["season", "calendar_season", "region", "service"]
STRATUM_KEYS: tuple[StratumKey, ...] = get_args(StratumKey)
#: Option names, for the errors of the two expressions parsed here.
BY_OPTION, WHERE_OPTION = "by", "scenes_where"
#: Keys whose values are words of their own in metric names (``test_melt_combined``); the others
#: carry the key (``test_region_North_combined``, ``test_service_dmi_combined``).
BARE_KEYS: tuple[StratumKey, ...] = ("season", "calendar_season")
METRIC_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def stratum_value(metadata: SceneMetadata, key: StratumKey) -> str:
    """The stratum of a scene under ``key``."""
    values: dict[StratumKey, str] = {
        "season": metadata.season,
        "calendar_season": metadata.calendar_season,
        "region": metadata.region,
        "service": metadata.service,
    }
    return values[key]


def known_values(key: StratumKey) -> tuple[str, ...]:
    """The values ``key`` can take in the real files, in the order strata are listed."""
    if key == "season":
        return CRYO_SEASONS
    if key == "calendar_season":
        return CALENDAR_SEASONS
    if key == "service":
        return SERVICES
    return (*DMI_REGIONS, *CIS_REGIONS, UNKNOWN_REGION)


def metric_label(key: StratumKey, value: str) -> str:
    """The part of a stratum's MLflow metric names between the split and the score: ``melt``,
    ``DJF``, ``region_North``, ``service_dmi`` (characters MLflow refuses become ``_``)."""
    label = value if key in BARE_KEYS else f"{key}_{value}"
    return METRIC_UNSAFE.sub("_", label)


@dataclass(frozen=True)
class StratumScore:
    """The scores of one stratum: its scenes pooled as the official score pools all scenes."""

    key: StratumKey
    value: str
    scenes: tuple[str, ...]
    scores: Scores
    season_sources: tuple[SeasonSource, ...]  # where its scenes' melt/freeze labels came from

    @property
    def label(self) -> str:
        return metric_label(self.key, self.value)

    def metrics(self, split: str = "test") -> dict[str, float]:
        """As MLflow metrics: ``<split>_<label>_combined``, ``<split>_<label>_SOD_f1``, ..."""
        return self.scores.metrics(f"{split}_{self.label}")

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: key, value, label, scenes, the official scores and where the seasons came from."""
        return {"by": self.key, "stratum": self.value, "label": self.label, "scenes": list(self.scenes),
                **self.scores.as_dict(), "season_source": "+".join(self.season_sources)}  # fmt: skip


def parse_strata_keys(text: str | Sequence[str]) -> tuple[StratumKey, ...]:
    """The keys of ``--by season,region,service`` (a comma-separated text or a list), in order,
    each once; a clear :class:`ParameterError` for an unknown key."""
    items = text.split(",") if isinstance(text, str) else list(text)
    keys: list[StratumKey] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item not in STRATUM_KEYS:
            raise ParameterError(BY_OPTION, f"{item!r} is not one of {', '.join(STRATUM_KEYS)}")
        if item not in keys:
            keys.append(item)
    return tuple(keys)


def _ordered(key: StratumKey, values: set[str]) -> list[str]:
    """Strata values in the order of :func:`known_values`, others alphabetically before ``unknown``."""
    known = known_values(key)
    rank = {v: i for i, v in enumerate(known)}
    return sorted(values, key=lambda v: (v == UNKNOWN_REGION, rank.get(v, len(known)), v))


def group_scenes(
    scene_ids: Sequence[str], metadata: Mapping[str, SceneMetadata], key: StratumKey
) -> dict[str, list[str]]:
    """Stratum value -> its scenes (in the order given), strata in their listing order."""
    missing = [s for s in scene_ids if s not in metadata]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise SeaIceError(
            f"no metadata for {len(missing)} scored scene(s) ({shown}); read it from the files that were scored"
        )
    groups: dict[str, list[str]] = {}
    for scene_id in scene_ids:
        groups.setdefault(stratum_value(metadata[scene_id], key), []).append(scene_id)
    return {value: groups[value] for value in _ordered(key, set(groups))}


def stratified_scores(
    board: ScoreBoard, metadata: Mapping[str, SceneMetadata], by: Sequence[StratumKey]
) -> list[StratumScore]:
    """The scores of each stratum of each key of ``by`` (keys in that order), each pooled over
    its scenes of ``board``; ``metadata`` must hold every scene of the board."""
    strata = []
    for key in parse_strata_keys(by):
        for value, scenes in group_scenes(list(board.scenes), metadata, key).items():
            subset = ScoreBoard(board.task, {s: board.scenes[s] for s in scenes})
            sources = tuple(sorted({metadata[s].season_source for s in scenes}))
            strata.append(StratumScore(key, value, tuple(scenes), subset.pooled(), sources))
    return strata


def strata_of_files(
    board: ScoreBoard, files: Sequence[str | Path], by: str | Sequence[str], seasons: SeasonTable | None = None
) -> list[StratumScore]:
    """:func:`stratified_scores` of ``board`` by ``by``, the scenes' metadata read from the scored
    ``files`` (melt/freeze from ``seasons``, else the approximation); no keys: none."""
    keys = parse_strata_keys(by)
    if not keys:
        return []
    return stratified_scores(board, read_metadata_files(files, seasons), keys)


def strata_metrics(strata: Sequence[StratumScore], split: str = "test") -> dict[str, float]:
    """Every stratum's scores as MLflow metrics (``test_melt_combined``, ``test_region_North_SOD_f1``, ...)."""
    metrics: dict[str, float] = {}
    for stratum in strata:
        metrics.update(stratum.metrics(split))
    return metrics


def write_strata_table(strata: Sequence[StratumScore], path: str | Path) -> Path:
    """One CSV row per stratum: key, value, metric label, scenes, scores and scored pixels per head,
    and where the melt/freeze labels came from (``table``, ``approximation`` or both)."""
    path = Path(path)
    heads = strata[0].scores.task.heads if strata else ()
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "by",
                "stratum",
                "label",
                "n_scenes",
                "combined",
                *(f"{h.name}_{h.score_metric}" for h in heads),
                *(f"{h.name}_pixels" for h in heads),
                "season_source",
                "scenes",
            ]
        )
        for s in strata:
            writer.writerow(
                [
                    s.key,
                    s.value,
                    s.label,
                    len(s.scenes),
                    s.scores.combined,
                    *(s.scores.charts[h.name] for h in heads),
                    *(s.scores.pixels[h.name] for h in heads),
                    "+".join(s.season_sources),
                    " ".join(s.scenes),
                ]
            )
    return path


@dataclass(frozen=True)
class Condition:
    """One term of a scene selection: ``key`` takes one of ``values`` (compared case-insensitively)."""

    key: StratumKey
    values: tuple[str, ...]

    def holds(self, metadata: SceneMetadata) -> bool:
        return stratum_value(metadata, self.key).lower() in {v.lower() for v in self.values}


def parse_where(where: str, metadata: Mapping[str, SceneMetadata] | None = None) -> tuple[Condition, ...]:
    """The conditions of ``season=freeze,region=North|NorthEast``: terms joined by commas must
    all hold, values joined by ``|`` are alternatives. Keys are those of :data:`STRATUM_KEYS`;
    a value must be one the real files can have (or, for a region, one a scene of ``metadata``
    has). An empty text selects everything. Errors are :class:`ParameterError` (``--scenes-where``)."""
    conditions: list[Condition] = []
    for term in (t.strip() for t in where.split(",")):
        if not term:
            continue
        key, sep, text = (part.strip() for part in term.partition("="))
        if not sep or not key or not text:
            raise ParameterError(WHERE_OPTION, f"{term!r} is not key=value (e.g. season=freeze,region=North|NorthEast)")
        if key not in STRATUM_KEYS:
            raise ParameterError(WHERE_OPTION, f"{key!r} is not one of {', '.join(STRATUM_KEYS)}")
        if any(c.key == key for c in conditions):
            raise ParameterError(WHERE_OPTION, f"{key} is given twice; list its alternatives as {key}=A|B")
        values = tuple(v.strip() for v in text.split("|"))
        allowed = set(known_values(key))
        if key == "region" and metadata is not None:
            allowed |= {m.region for m in metadata.values()}
        lowered = {a.lower() for a in allowed}
        wrong = [v for v in values if v.lower() not in lowered]
        if wrong:
            shown = ", ".join(_ordered(key, allowed))
            raise ParameterError(WHERE_OPTION, f"{key}={wrong[0]!r}: not one of {shown}")
        conditions.append(Condition(key, values))
    return tuple(conditions)


def select_scenes(metadata: Mapping[str, SceneMetadata], where: str) -> list[str]:
    """The ids of the scenes of ``metadata`` (in its order) that meet ``where`` (:func:`parse_where`);
    a :class:`ParameterError` saying what the scenes have when none does."""
    conditions = parse_where(where, metadata)
    chosen = [s for s, m in metadata.items() if all(c.holds(m) for c in conditions)]
    if not chosen and metadata:
        have = "; ".join(
            f"{c.key}: " + ", ".join(f"{v} {len(s)}" for v, s in group_scenes(list(metadata), metadata, c.key).items())
            for c in conditions
        )
        raise ParameterError(WHERE_OPTION, f"no scene meets {where!r} (the {len(metadata)} scenes have {have})")
    return chosen


def scene_share(scene_ids: Sequence[str], fraction: float, seed: int) -> list[str]:
    """``fraction`` of ``scene_ids`` (at least one scene), drawn with ``seed``, in the order given.

    The draw takes the first scenes of one seeded permutation of the sorted ids, so with the same
    seed a smaller share is a subset of a larger one (a data-size study adds scenes, it does not
    swap them)."""
    if fraction >= 1 or not scene_ids:
        return list(scene_ids)
    ordered = sorted(scene_ids)
    order = np.random.default_rng(seed).permutation(len(ordered))
    kept = {ordered[i] for i in order[: max(1, round(fraction * len(ordered)))]}
    return [s for s in scene_ids if s in kept]
