"""WMO egg codes of the raw ice charts -> SIC, SOD and FLOE classes (spec section 2).

This reproduces the starter pack's ``convert_raw_icechart.py`` (HEAD, thresholds 0.65)
polygon by polygon, including its quirks:

* look-up tables are applied code by code; codes missing from a table are kept as they are;
* a polygon with CT > 0 and CA not filled (-9) gets CA = CT (single-ice-type polygon);
* equal partial classes are merged pair by pair in the order (A,B), (A,C), (B,C), and the
  merge *assigns* the second partial concentration to the first slot, so when A = B = C
  slot A receives only CC;
* the dominant class needs max(merged partial) / CT >= threshold (both in 0..10 class units);
  argmax ties go to the first slot;
* FLOE is masked for the whole polygon when any of FA, FB, FC is fast ice, pancake, shuga
  or level ice;
* POLY_TYPE ``W`` polygons get SIC 0; SIC 0 forces SOD 0 and FLOE 0.

Where the published script leaves garbage we mask instead (documented, tested):
values outside a chart's classes after conversion (CT -9, SIGRID interval codes such as 46,
unknown stage or form codes) become 255, and raster pixels whose polygon id is not in the
code table become 255. The ready-to-train files hold no other values (spec section 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seaice_mlflow.tasks.autoice.charts import CHARTS, IGNORE_INDEX

#: Header row (element 0) of the ``polygon_codes`` coordinate.
POLYGON_CODES_HEADER = "poly_id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE"
CODE_COLUMNS = POLYGON_CODES_HEADER.split(";")

NOT_FILLED = -9
UNKNOWN = 99

# Column indexes in the integer table (CF and POLY_TYPE dropped).
POLY_ID, CT = 0, 1
PARTIAL_CONCENTRATION = (2, 5, 8)  # CA, CB, CC
PARTIAL_STAGE = (3, 6, 9)  # SA, SB, SC
PARTIAL_FORM = (4, 7, 10)  # FA, FB, FC

#: Concentration codes (tenths) -> SIC class. 92 is 10/10 fast ice.
SIC_CODES: dict[int, int] = {
    0: 0,
    1: 0,
    2: 0,
    55: 0,
    10: 1,
    20: 2,
    30: 3,
    40: 4,
    50: 5,
    60: 6,
    70: 7,
    80: 8,
    90: 9,
    91: 10,
    92: 10,
}

#: Stage-of-development codes -> SOD class (98 glacier and 99 unknown are masked).
SOD_CODES: dict[int, int] = {
    0: 0,
    80: 0,
    81: 1,
    82: 1,
    83: 2,
    84: 2,
    85: 2,
    86: 4,
    87: 3,
    88: 3,
    89: 3,
    91: 4,
    93: 4,
    95: 5,
    96: 5,
    97: 5,
    98: 255,
    99: 255,
}

#: Form-of-ice codes -> FLOE class (pancake, shuga, fast and level ice are masked).
FLOE_CODES: dict[int, int] = {
    0: 0,
    22: 255,
    1: 255,
    2: 1,
    3: 2,
    4: 3,
    5: 4,
    6: 5,
    7: 5,
    8: 255,
    9: 6,
    10: 6,
    21: 255,
}

#: Dominance thresholds of the December-2022 data release (v1 used 0.7 and 0.5).
DOMINANCE_THRESHOLD = 0.65


class PolygonCodeError(ValueError):
    """The ``polygon_codes`` table cannot be parsed."""


@dataclass(frozen=True)
class PolygonTable:
    """The parsed ``polygon_codes`` table: one row per polygon."""

    codes: np.ndarray  # (n, 13) int64: poly_id, CT, CA, SA, FA, CB, SB, FB, CC, SC, FC, CN, CD
    poly_type: np.ndarray  # (n,) str, "I" or "W"

    @property
    def poly_ids(self) -> np.ndarray:
        return self.codes[:, POLY_ID]


def parse_polygon_codes(rows: Sequence[str]) -> PolygonTable:
    """Parse the ``polygon_codes`` strings (element 0 is the header row)."""
    rows = [str(r) for r in rows]
    if not rows or rows[0].strip() != POLYGON_CODES_HEADER:
        found = rows[0] if rows else "nothing"
        raise PolygonCodeError(f"polygon_codes header should be {POLYGON_CODES_HEADER!r}, found {found!r}")
    fields = [r.split(";") for r in rows[1:]]
    bad = [r for r, f in zip(rows[1:], fields) if len(f) != len(CODE_COLUMNS)]
    if bad:
        raise PolygonCodeError(
            f"polygon_codes rows with {len(bad[0].split(';'))} fields instead of {len(CODE_COLUMNS)}, e.g. {bad[0]!r}"
        )
    try:
        codes = np.array([[int(v) for v in f[:-2]] for f in fields], dtype=np.int64).reshape(-1, 13)
    except ValueError as err:
        raise PolygonCodeError(f"polygon_codes holds a non-integer code: {err}") from err
    poly_type = np.array([f[-1].strip() for f in fields], dtype=str)
    return PolygonTable(codes=codes, poly_type=poly_type)


def format_polygon_codes(codes: np.ndarray, poly_type: Sequence[str]) -> list[str]:
    """Write a code table in the raw files' string format (header row first).

    ``codes`` has the 13 integer columns; CF is written glued as the raw files show it
    (``FA`` followed by ``-9``, e.g. ``08-9``).
    """
    rows = [POLYGON_CODES_HEADER]
    for row, kind in zip(np.asarray(codes, dtype=np.int64), poly_type):
        values = [f"{v:02d}" if v >= 0 else str(v) for v in row]
        cf = f"{row[PARTIAL_FORM[0]]:02d}-9" if row[PARTIAL_FORM[0]] >= 0 else "-9"
        rows.append(";".join(values + [cf, kind]))
    return rows


def _lookup(values: np.ndarray, table: dict[int, int]) -> np.ndarray:
    """Map codes through ``table``; codes absent from the table are kept."""
    out = values.copy()
    for code, cls in table.items():
        out[values == code] = cls
    return out


def _dominant(classes: np.ndarray, concentration: np.ndarray, total: np.ndarray, threshold: float) -> np.ndarray:
    """Dominant class per polygon (or NOT_FILLED), with the starter pack's pairwise merge."""
    # Pairwise merge with the script's assignment semantics: (A,C) overwrites what (A,B)
    # put in slot A, so A = B = C leaves CA + CC in slot A.
    merged = concentration.copy()
    for first, second in ((0, 1), (0, 2), (1, 2)):
        same = (classes[:, first] == classes[:, second]) & (classes[:, first] != NOT_FILLED)
        merged[same, first] = concentration[same, first] + concentration[same, second]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.max(merged, axis=1) / total * 100
    winner = classes[np.arange(len(classes)), np.argmax(merged, axis=1)]
    return np.where(ratio >= threshold * 100, winner, NOT_FILLED)


def decode_polygons(
    table: PolygonTable, sod_threshold: float = DOMINANCE_THRESHOLD, floe_threshold: float = DOMINANCE_THRESHOLD
) -> dict[str, np.ndarray]:
    """SIC, SOD and FLOE class (uint8, 255 = masked) of every polygon in ``table``."""
    codes = table.codes
    total = _lookup(codes[:, CT], SIC_CODES)
    concentration = _lookup(codes[:, list(PARTIAL_CONCENTRATION)], SIC_CODES)
    single_type = (total > 0) & (concentration[:, 0] == NOT_FILLED)
    concentration[single_type, 0] = total[single_type]
    stage = _lookup(codes[:, list(PARTIAL_STAGE)], SOD_CODES)
    form = _lookup(codes[:, list(PARTIAL_FORM)], FLOE_CODES)

    sic = np.where(np.char.lower(table.poly_type) == "w", 0, total)
    sod = _dominant(stage, concentration, total, sod_threshold)
    floe = _dominant(form, concentration, total, floe_threshold)
    floe = np.where(np.any(form == IGNORE_INDEX, axis=1), IGNORE_INDEX, floe)

    water = sic == 0
    sod = np.where(water, 0, sod)
    floe = np.where(water, 0, floe)
    out = {}
    for name, values in (("SIC", sic), ("SOD", sod), ("FLOE", floe)):
        valid = (values >= 0) & (values < CHARTS[name].n_classes)
        out[name] = np.where(valid, values, IGNORE_INDEX).astype(np.uint8)
    return out


def rasterise(polygon_ids: np.ndarray, table_ids: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Class raster from a polygon-id raster (float, NaN = no polygon).

    Returns int16 with the class of each pixel's polygon, 255 for ids missing from the
    table, and -1 where there is no polygon (so that a 2x2 max skips those pixels).
    """
    out = np.full(polygon_ids.shape, -1, dtype=np.int16)
    has_polygon = np.isfinite(polygon_ids)
    ids = polygon_ids[has_polygon].astype(np.int64)
    order = np.argsort(table_ids)
    sorted_ids = table_ids[order]
    pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
    known = sorted_ids[pos] == ids if len(sorted_ids) else np.zeros(ids.shape, bool)
    values = np.full(ids.shape, IGNORE_INDEX, dtype=np.int16)
    if len(sorted_ids):
        values[known] = classes[order][pos[known]]
    out[has_polygon] = values
    return out
