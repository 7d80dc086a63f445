"""Scene metadata from the files themselves: date, ice service, chart region, calendar season and
cryospheric season (melt/freeze), for stratified scores and for choosing scenes by metadata.

Where each field comes from (spec sections 1 and 3):

* ``scene_id`` and ``date``: the file name (the Sentinel-1 start time), as everywhere else;
* ``service``: the global attribute ``ice_service`` of a ready-to-train or test file, else the
  provider in the file name;
* ``region``: parsed from the raw file name, i.e. the ``original_id`` attribute of a
  ready-to-train or test file and the name itself of a raw file (:func:`naming.chart_region`):
  a DMI region name or a CIS region code, ``"unknown"`` when the id says none;
* ``latitude``: the mean of the geolocation tie points (``sar_grid2d_latitude`` or, raw,
  ``sar_grid_latitude``); a ``_prep_reference.nc`` file holds only charts, so its metadata come
  from the sibling ``_prep.nc`` when there is one, else from its name alone;
* ``calendar_season``: DJF, MAM, JJA or SON of the date;
* ``season``: melt or freeze, from a table the user gives (:func:`read_season_table`) or, for a
  scene the table does not list or without one, from :func:`approximate_season`;
  ``season_source`` says which.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from seaice_mlflow.core.errors import ParameterError, SceneError
from seaice_mlflow.tasks.autoice.files.naming import (
    RAW,
    REFERENCE,
    SceneName,
    chart_region,
    parse_scene_name,
    prep_name,
)
from seaice_mlflow.tasks.autoice.files.netcdf import check_file, load_variable, open_scene_file
from seaice_mlflow.tasks.autoice.files.variables import LATITUDE
from seaice_mlflow.tasks.autoice.scene import Scene

CalendarSeason = Literal["DJF", "MAM", "JJA", "SON"]
CALENDAR_SEASONS: tuple[CalendarSeason, ...] = get_args(CalendarSeason)
#: The cryospheric season: melt (from melt onset to freeze-up) or freeze (the rest of the year).
CryoSeason = Literal["freeze", "melt"]
CRYO_SEASONS: tuple[CryoSeason, ...] = get_args(CryoSeason)
#: Where a scene's melt/freeze label came from: the user's table or the month/latitude rule.
SeasonSource = Literal["table", "approximation"]
SERVICES = ("dmi", "cis")

RAW_LATITUDE = "sar_grid_latitude"
#: Option whose value is the season table (named in its errors).
SEASON_TABLE_OPTION = "season_table"
#: IceBench's scene lists: ``Melt_<location>_train_files.json``, ``Freeze_<location>_...json``.
ICEBENCH_LIST = re.compile(r"^(?P<season>melt|freeze)_.*\.json$", re.IGNORECASE)
SCENE_KEY = re.compile(r"^\d{8}T\d{6}_(dmi|cis)$")

#: The month/latitude rule (see :func:`approximate_season`): day of year of melt onset and of
#: freeze-up at :data:`RULE_LATITUDE`, and their change per degree further north.
RULE_LATITUDE = 70.0
MELT_ONSET_DAY, MELT_ONSET_DAYS_PER_DEGREE = 135.0, 1.0
FREEZE_UP_DAY, FREEZE_UP_DAYS_PER_DEGREE = 320.0, -3.0
RULE_LATITUDES = (45.0, 85.0)  # latitudes outside are taken as these


@dataclass(frozen=True)
class SceneMetadata:
    """What a scene's files say about when, where and by whom it was charted."""

    scene_id: str  # e.g. "20180325T194759_dmi"
    date: datetime  # Sentinel-1 start time
    service: str  # the ice service: "dmi" or "cis" (the ``ice_service`` attribute)
    region: str  # DMI region name or CIS region code, "unknown" when the files name none
    calendar_season: CalendarSeason
    season: CryoSeason
    season_source: SeasonSource
    latitude: float | None  # scene mean of the tie points, degrees N; None when no file holds them
    original_id: str | None  # the raw file name the scene came from, when known

    def as_dict(self) -> dict[str, object]:
        """JSON-ready fields (the date in ISO format)."""
        return {**asdict(self), "date": self.date.isoformat()}

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> SceneMetadata:
        """The metadata :meth:`as_dict` gave (e.g. kept in a store's scene record)."""
        kept = dict(values)
        kept["date"] = datetime.fromisoformat(str(kept["date"]))
        return cls(**kept)

    def with_seasons(self, seasons: SeasonTable | None) -> SceneMetadata:
        """This scene with its melt/freeze from ``seasons`` when the table lists it, else from
        :func:`approximate_season` (e.g. to apply a table to metadata kept without one)."""
        season = seasons.season_of(self.scene_id) if seasons is not None else None
        if season is not None:
            return replace(self, season=season, season_source="table")
        return replace(self, season=approximate_season(self.date, self.latitude), season_source="approximation")


def calendar_season(month: int) -> CalendarSeason:
    """DJF (December-February), MAM, JJA or SON of a month 1-12."""
    return CALENDAR_SEASONS[(month % 12) // 3]


def melt_window(latitude: float | None) -> tuple[float, float]:
    """Day of year of the approximate melt onset and freeze-up at ``latitude`` (None: 70 N)."""
    lat = RULE_LATITUDE if latitude is None else float(np.clip(latitude, *RULE_LATITUDES))
    north = lat - RULE_LATITUDE
    return MELT_ONSET_DAY + MELT_ONSET_DAYS_PER_DEGREE * north, FREEZE_UP_DAY + FREEZE_UP_DAYS_PER_DEGREE * north


def approximate_season(date: datetime, latitude: float | None) -> CryoSeason:
    """Melt or freeze by a month/latitude rule: an **approximation** of per-scene melt-onset and
    freeze-up dates, used when no table gives them.

    IceBench labels scenes from the NASA passive-microwave melt-onset and freeze-up dates
    (Markus et al. 2009, JGR 114, C12024): "melt" from melt onset to freeze-up, which includes
    the open-water weeks of autumn. Those data cannot be fetched here, so the rule is a window
    of days of the year that opens later and closes earlier the further north the scene is:

    * melt onset: day 135 (15 May) at 70 N, one day later per degree north (5 May at 60 N,
      25 May at 80 N);
    * freeze-up: day 320 (16 November) at 70 N, three days earlier per degree north (16 December
      at 60 N, 17 October at 80 N);
    * latitudes outside 45-85 N are taken as 45 or 85 N; without a latitude, 70 N (about the
      mean of the AI4Arctic scenes).

    The numbers were chosen to agree with IceBench's own melt/freeze scene lists
    (``files_json/{Melt,Freeze}_all_train_files.json``, 476 AI4Arctic training scenes): with a
    typical latitude for each chart region (estimated from the region's name, e.g. Cape Farewell
    60 N, Qaanaaq 77 N, North 82 N) the rule gives IceBench's label for 90 % of them; a window
    of months alone (15 May - 15 November) gives 87 %. The errors lie at the window's edges,
    where melt onset and freeze-up vary from year to year and across a scene. Give a table
    (:func:`read_season_table`) for the real dates.
    """
    onset, freeze_up = melt_window(latitude)
    day = date.timetuple().tm_yday
    return "melt" if onset <= day < freeze_up else "freeze"


@dataclass(frozen=True)
class SeasonTable:
    """Melt/freeze per scene id as a user's table gives it, with the files it was read from."""

    seasons: Mapping[str, CryoSeason] = field(default_factory=dict)
    sources: tuple[Path, ...] = ()

    def season_of(self, scene_id: str) -> CryoSeason | None:
        """The table's season of ``scene_id``, None when the table does not list it."""
        return self.seasons.get(scene_id)


def read_season_table(path: str | Path) -> SeasonTable:
    """Melt/freeze per scene from a CSV file with the columns ``scene,season``, one of IceBench's
    JSON scene lists (``Melt_<location>_train_files.json``, ``Freeze_<location>_...json``: a list
    of file names, the season in the file name) or a folder of such lists.

    A scene is a scene id (``20180325T194759_dmi``) or the name or path of any of its files (raw,
    ready-to-train, reference). A scene listed with both seasons, a malformed file or an unknown
    season is a :class:`ParameterError` naming the file (and the line of a CSV file).
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and ICEBENCH_LIST.match(p.name))
        if not files:
            raise ParameterError(
                SEASON_TABLE_OPTION,
                f"{path} holds no Melt_*.json or Freeze_*.json scene list (IceBench's files_json folder)",
            )
    else:
        if not path.is_file():
            raise ParameterError(SEASON_TABLE_OPTION, f"{path} does not exist")
        files = [path]
    seasons: dict[str, CryoSeason] = {}
    origin: dict[str, Path] = {}
    for file in files:
        for scene_id, season, where in _table_entries(file):
            if seasons.get(scene_id, season) != season:
                raise ParameterError(
                    SEASON_TABLE_OPTION,
                    f"{where}: scene {scene_id} is {season} here but {seasons[scene_id]} in {origin[scene_id].name}",
                )
            seasons[scene_id], origin[scene_id] = season, file
    return SeasonTable(seasons, tuple(files))


def _table_entries(path: Path) -> Iterable[tuple[str, CryoSeason, str]]:
    """(scene id, season, where: file and line) of each entry of one table file."""
    if path.suffix.lower() == ".csv":
        yield from _csv_entries(path)
        return
    match = ICEBENCH_LIST.match(path.name)
    if match is None:
        raise ParameterError(
            SEASON_TABLE_OPTION,
            f"{path.name} is neither a CSV file (scene,season) nor an IceBench scene list named "
            "Melt_<location>_train_files.json or Freeze_<location>_train_files.json",
        )
    season: CryoSeason = match["season"].lower()
    try:
        with open(path, encoding="utf-8") as f:
            names = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ParameterError(SEASON_TABLE_OPTION, f"{path.name} is not readable JSON ({err})") from err
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ParameterError(SEASON_TABLE_OPTION, f"{path.name} must hold a JSON list of file names")
    for i, name in enumerate(names):
        where = f"{path.name} entry {i + 1}"
        yield table_scene_id(name, where), season, where


def _csv_entries(path: Path) -> Iterable[tuple[str, CryoSeason, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ParameterError(SEASON_TABLE_OPTION, f"{path.name} is not a readable CSV file ({err})") from err
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if "scene" not in header or "season" not in header:
        raise ParameterError(
            SEASON_TABLE_OPTION,
            f"{path.name}: the first line must name the columns scene,season (found {','.join(header) or 'nothing'})",
        )
    scene_col, season_col = header.index("scene"), header.index("season")
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path.name} line {line}"
        if len(row) <= max(scene_col, season_col):
            raise ParameterError(SEASON_TABLE_OPTION, f"{where}: expected the columns {','.join(header)}")
        season = row[season_col].strip().lower()
        if season not in CRYO_SEASONS:
            raise ParameterError(
                SEASON_TABLE_OPTION, f"{where}: season {row[season_col]!r} is not one of {', '.join(CRYO_SEASONS)}"
            )
        yield table_scene_id(row[scene_col], where), season, where


def table_scene_id(entry: str, where: str) -> str:
    """The scene id of a table entry: a scene id, or the name or path of one of its files."""
    name = entry.strip().replace("\\", "/").rsplit("/", 1)[-1]
    if SCENE_KEY.match(name):
        return name
    try:
        return parse_scene_name(name).key
    except SceneError:
        raise ParameterError(
            SEASON_TABLE_OPTION,
            f"{where}: {entry!r} is neither a scene id (YYYYMMDDThhmmss_dmi|cis) nor an AI4Arctic file name",
        ) from None


def build_metadata(
    name: SceneName, attrs: Mapping[str, object], latitude: np.ndarray | None, seasons: SeasonTable | None = None
) -> SceneMetadata:
    """The metadata of the scene ``name`` from its file's global attributes and tie-point
    latitudes (either may be empty); see the module doc for the rules."""
    original = attrs.get("original_id")
    original_id = original.strip() if isinstance(original, str) and original.strip() else None
    service = attrs.get("ice_service")
    service = service.strip().lower() if isinstance(service, str) else ""
    mean_lat = None
    if latitude is not None:
        values = np.asarray(latitude, dtype=np.float64)
        values = values[np.isfinite(values) & (np.abs(values) <= 90)]
        mean_lat = float(values.mean()) if values.size else None
    return SceneMetadata(
        scene_id=name.key,
        date=name.time,
        service=service if service in SERVICES else name.provider,
        region=chart_region(original_id or ""),
        calendar_season=calendar_season(name.time.month),
        season=approximate_season(name.time, mean_lat),
        season_source="approximation",
        latitude=mean_lat,
        original_id=original_id,
    ).with_seasons(seasons)


def scene_metadata(scene: Scene, seasons: SeasonTable | None = None) -> SceneMetadata:
    """The metadata of a scene already read (its attributes and tie points), without reopening it."""
    name = parse_scene_name(scene.source)
    attrs = dict(scene.attrs)
    if name.file_kind == RAW:
        attrs.setdefault("original_id", scene.source.name)
    return build_metadata(name, attrs, scene.latitude, seasons)


def read_metadata(path: str | Path, seasons: SeasonTable | None = None) -> SceneMetadata:
    """The metadata of the scene of one file (ready-to-train, test, reference or raw), reading
    only its attributes and tie points; the file is opened unchanged."""
    path = Path(path)
    check_file(path)
    name = parse_scene_name(path)
    if name.file_kind == REFERENCE:
        sibling = path.parent / prep_name(name.key)
        if sibling.is_file():
            return read_metadata(sibling, seasons)
        return build_metadata(name, {}, None, seasons)
    latitude_name = RAW_LATITUDE if name.file_kind == RAW else LATITUDE
    with open_scene_file(path) as ds:
        attrs = dict(ds.attrs)
        latitude = load_variable(ds, latitude_name, path) if latitude_name in ds.variables else None
    if name.file_kind == RAW:
        attrs.setdefault("original_id", path.name)
    return build_metadata(name, attrs, latitude, seasons)


def read_metadata_files(paths: Iterable[str | Path], seasons: SeasonTable | None = None) -> dict[str, SceneMetadata]:
    """Scene id -> metadata for the scenes of ``paths`` (the first file of a scene counts)."""
    found: dict[str, SceneMetadata] = {}
    for path in paths:
        key = parse_scene_name(path).key
        if key not in found:
            found[key] = read_metadata(path, seasons)
    return found
