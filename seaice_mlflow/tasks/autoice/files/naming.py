"""AI4Arctic file names: scene keys, providers, acquisition times and file kinds (spec section 1)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, get_args

from seaice_mlflow.core.errors import SceneError, looked_at

PREP_PATTERN = re.compile(r"^(?P<key>(?P<time>\d{8}T\d{6})_(?P<provider>dmi|cis))_prep(?P<reference>_reference)?\.nc$")
RAW_PATTERN = re.compile(
    r"^(?P<mission>S1[AB])_EW_GRDM_1SDH_(?P<time>\d{8}T\d{6})_(?P<stop>\d{8}T\d{6})_"
    r"(?P<orbit>\d{6})_(?P<datatake>[0-9A-F]{6})_(?P<product>[0-9A-F]{4})_icechart_"
    r"(?P<provider>dmi|cis)_.+\.nc$"
)
TIME_FORMAT = "%Y%m%dT%H%M%S"

#: Chart regions of the raw names' provider part (spec section 1): DMI region names and CIS codes.
DMI_REGIONS = (
    "CapeFarewell",
    "CentralEast",
    "CentralWest",
    "North",
    "NorthEast",
    "NorthWest",
    "NorthAndCentralEast",
    "Qaanaaq",
    "SouthEast",
    "SouthWest",
)
CIS_REGIONS = ("EA", "FOXE", "NFLD", "WA", "MID", "HA")
#: The provider part of a raw name: ``dmi_YYYYMMDDhhmm_<Region>_RIC``, ``cis_SGRDI<REG>_YYYYMMDDThhmmZ_pl_a``.
DMI_CHART = re.compile(r"(?:^|_)dmi_\d{12}_(?P<region>[A-Za-z]+)_RIC(?:_|\.|$)")
CIS_CHART = re.compile(r"(?:^|_)cis_SGRDI(?P<region>[A-Z]+)_\d{8}T\d{4}Z(?:_|\.|$)")
UNKNOWN_REGION = "unknown"

#: What a file is, from its name: a ready-to-train (or test) scene, a test reference, a raw scene.
FileKind = Literal["prep", "reference", "raw"]
PREP, REFERENCE, RAW = get_args(FileKind)


@dataclass(frozen=True)
class SceneName:
    """What a scene file's name says."""

    key: str  # e.g. "20180325T194759_dmi": the scene id used everywhere (uploads, stores, runs)
    provider: str  # "dmi" or "cis"
    time: datetime  # Sentinel-1 start time
    file_kind: FileKind


def parse_scene_name(path: str | Path) -> SceneName:
    """Parse an AI4Arctic file name; a clear :class:`SceneError` when it is none."""
    name = Path(path).name
    match = PREP_PATTERN.match(name)
    if match:
        kind = REFERENCE if match["reference"] else PREP
    else:
        match = RAW_PATTERN.match(name)
        kind = RAW
    if match is None:
        raise SceneError(
            path,
            "file name does not follow the AI4Arctic naming",
            "expected <YYYYMMDDThhmmss>_<dmi|cis>_prep.nc, <key>_prep_reference.nc or "
            "S1?_EW_GRDM_1SDH_..._icechart_<dmi|cis>_....nc; rename the file or leave it out",
        )
    try:
        time = datetime.strptime(match["time"], TIME_FORMAT)
    except ValueError:  # matched the digits, but e.g. month 13 or hour 99
        raise SceneError(
            path,
            f"the start time {match['time']} in the file name is not a real date and time (YYYYMMDDThhmmss)",
            "rename the file after its Sentinel-1 start time or leave it out",
        ) from None
    key = f"{match['time']}_{match['provider']}"
    return SceneName(key=key, provider=match["provider"], time=time, file_kind=kind)


def chart_region(original_id: str) -> str:
    """The chart region a raw file name (the ``original_id`` attribute) names: a DMI region name
    (``..._icechart_dmi_201803251947_CapeFarewell_RIC.nc``) or a CIS region code
    (``..._icechart_cis_SGRDIFOXE_20180707T1214Z_pl_a.nc``), else :data:`UNKNOWN_REGION`.

    A well-formed region that the spec does not list is kept as written (the spec's lists come
    from the files seen, not from the services); nothing here raises."""
    for pattern in (DMI_CHART, CIS_CHART):
        match = pattern.search(original_id)
        if match:
            return match["region"]
    return UNKNOWN_REGION


def parsed_names(paths: Iterable[str | Path]) -> list[tuple[Path, SceneName]]:
    """The files whose names parse, with what their names say; the others (e.g. an impossible
    date) are left for the step that reads them to report."""
    parsed = []
    for path in map(Path, paths):
        try:
            parsed.append((path, parse_scene_name(path)))
        except SceneError:
            continue
    return parsed


def prep_name(key: str) -> str:
    """File name of the ready-to-train (or test) file of scene ``key``."""
    return f"{key}_prep.nc"


def reference_name(key: str) -> str:
    """File name of the test reference charts of scene ``key``."""
    return f"{key}_prep_reference.nc"


def find_scene_files(directory: str | Path) -> list[Path]:
    """Scene files (ready, test or raw, not references) in ``directory``, sorted by name.

    Files are chosen by the pattern of their name only: one whose name holds an impossible date
    is listed, and :func:`parse_scene_name` reports it when it is read."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SceneError(
            directory, f"is not a folder: {looked_at(directory)}", "give the folder that holds the .nc scene files"
        )
    files = []
    for path in sorted(directory.glob("*.nc")):
        if PREP_PATTERN.match(path.name) and not path.name.endswith("_prep_reference.nc"):
            files.append(path)
        elif RAW_PATTERN.match(path.name):
            files.append(path)
    return files
