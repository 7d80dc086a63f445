"""SIGRID-3 codes of predicted chart polygons: the egg-code look-ups of
:mod:`~seaice_mlflow.tasks.autoice.files.eggcode` read in the reverse direction.

The WMO SIGRID-3 ice-chart archive format describes each polygon by egg-code fields: total
concentration ``CT``, partial concentrations ``CA``/``CB``/``CC``, stages of development ``SA``/``SB``/``SC``,
forms ``FA``/``FB``/``FC``, ``CN``, ``CD``, ``CF`` and ``POLY_TYPE`` (``I`` ice, ``W`` water), two-character
codes with ``-9`` for a field not filled. A predicted polygon has one class per chart, so it is written
as a single-ice-type polygon:

* ``CT``: the code of its SIC class; ``CA`` not filled (a single ice type: CA = CT, as the conversion reads it);
* ``SA``: the code of its SOD class (the dominant stage), ``FA`` of its FLOE class (the dominant form),
  ``CF`` their predominant form as the raw AI4Arctic files write it (``FA`` then ``-9``);
* a class's code is the one the challenge's class tables name (:data:`CLASS_CODES`): SIC 10 "100%" ->
  ``92`` (10/10), SOD 4 "thick first-year ice" -> ``93``, FLOE 6 "bergs" -> ``10`` (icebergs). The
  conversion is many-to-one (91 and 92 give SIC 10; 86, 91 and 93 give SOD 4; ...), so the other codes
  of a class are not written; :func:`code_note` states the merge in the GeoPackage's layer metadata;
* SIC 0 is a water polygon: ``POLY_TYPE`` ``W``, ``CT`` ``00``, no stage or form;
* an ice polygon (SIC > 0) whose SOD or FLOE is 0 (open water: a model may say so at low
  concentration) gets ``99`` (undetermined) there, never the ice-free ``00`` that contradicts its ``CT``;
* a masked chart (255) is ``99`` (unknown); ``CB`` ... ``CD`` are not filled.

So :func:`~seaice_mlflow.tasks.autoice.files.eggcode.decode_polygons` turns the codes back into the same
classes, except an ice polygon's open-water stage or form, which it reads as undetermined (255).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from seaice_mlflow.tasks.autoice.charts import CHART_NAMES, CHARTS
from seaice_mlflow.tasks.autoice.files.eggcode import (
    CODE_COLUMNS,
    CT,
    FLOE_CODES,
    NOT_FILLED,
    PARTIAL_FORM,
    PARTIAL_STAGE,
    POLY_ID,
    SIC_CODES,
    SOD_CODES,
    UNKNOWN,
    format_polygon_codes,
)

#: The SIGRID-3 attributes of a polygon, in the order of the ``polygon_codes`` table.
SIGRID_FIELDS: tuple[str, ...] = tuple(CODE_COLUMNS[1:])

#: The field of each chart's code and the conversion's code -> class table.
CHART_FIELDS: dict[str, tuple[str, Mapping[int, int]]] = {
    "SIC": ("CT", SIC_CODES),
    "SOD": ("SA", SOD_CODES),
    "FLOE": ("FA", FLOE_CODES),
}

#: The code written for each class: the one the class tables name (class 0 of SOD and FLOE is never
#: written on an ice polygon, see the module doc).
CLASS_CODES: dict[str, tuple[int, ...]] = {
    "SIC": (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 92),  # 0 %, 10 % ... 90 %, 100 % = 10/10
    "SOD": (0, 81, 83, 87, 93, 95),  # open water, new, young, thin first-year, thick first-year, old ice
    "FLOE": (0, 2, 3, 4, 5, 6, 10),  # open water, ice cake, small, medium, big, vast floe, icebergs
}


def class_codes(chart: str) -> tuple[int, ...]:
    """The SIGRID-3 code of each class of ``chart`` (CT for SIC, SA for SOD, FA for FLOE); a ValueError
    when a code does not give its class through the egg-code conversion."""
    codes, table = CLASS_CODES[chart], CHART_FIELDS[chart][1]
    wrong = [(k, code) for k, code in enumerate(codes) if table.get(code) != k]
    if wrong or len(codes) != CHARTS[chart].n_classes:
        raise ValueError(f"{chart} codes {wrong or codes} do not give the classes 0..{CHARTS[chart].n_classes - 1}")
    return codes


def encode(chart: str, classes: np.ndarray) -> np.ndarray:
    """Codes of ``classes`` (uint8) of ``chart``; 99 (unknown) for a masked or unknown class."""
    codes = np.asarray(class_codes(chart) + (UNKNOWN,) * (256 - CHARTS[chart].n_classes), dtype=np.int64)
    return codes[np.asarray(classes, dtype=np.uint8)]


def code_note() -> str:
    """The codes written, the codes the conversion merges with them, and the ice-free rule: what a
    reader of the polygons needs to know (layer metadata)."""
    merged = []
    for chart in CHART_NAMES:
        field, table = CHART_FIELDS[chart]
        for k, code in enumerate(class_codes(chart)):
            others = [f"{c:02d}" for c, cls in table.items() if cls == k and c != code]
            if others and not (k == 0 and chart != "SIC"):
                merged.append(
                    f"{chart} {k} ({CHARTS[chart].class_names[k]}): {field} {code:02d}, also {', '.join(others)}"
                )
    return (
        "Each class is written as the code the AutoICE class tables name; the AutoICE conversion also reads "
        f"other codes as that class, which are not written: {'; '.join(merged)}. A water polygon (SIC 0) is "
        "POLY_TYPE W, CT 00, with no stage or form (-9); on an ice polygon (POLY_TYPE I) an open-water SOD or FLOE "
        f"(class 0) is written {UNKNOWN} (undetermined), never the ice-free 00; a masked chart is {UNKNOWN}."
    )


def sigrid_table(sic: np.ndarray, sod: np.ndarray, floe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The integer code table (n, 13: poly_id, CT, CA, SA, FA, CB, ...; ids from 1) and POLY_TYPE of
    polygons with these classes, in the layout of eggcode's ``polygon_codes``."""
    sic = np.asarray(sic, dtype=np.uint8)
    codes = np.full((len(sic), len(CODE_COLUMNS) - 2), NOT_FILLED, dtype=np.int64)
    codes[:, POLY_ID] = np.arange(1, len(sic) + 1)
    codes[:, CT] = encode("SIC", sic)
    water = sic == 0
    for column, chart, classes in ((PARTIAL_STAGE[0], "SOD", sod), (PARTIAL_FORM[0], "FLOE", floe)):
        classes = np.asarray(classes, dtype=np.uint8)
        ice_free = classes == 0  # on an ice polygon: undetermined, not the ice-free code
        codes[:, column] = np.where(water, NOT_FILLED, np.where(ice_free, UNKNOWN, encode(chart, classes)))
    return codes, np.where(water, "W", "I")


def sigrid_attributes(classes: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Attribute columns of polygons with ``classes`` (chart -> uint8 per polygon): the SIGRID-3 fields
    as their two-character codes, then each chart's class index (255: masked) and name ("" when masked)."""
    codes, poly_type = sigrid_table(classes["SIC"], classes["SOD"], classes["FLOE"])
    rows = [row.split(";")[1:] for row in format_polygon_codes(codes, poly_type)[1:]]
    table = np.array(rows, dtype=object).reshape(len(rows), len(SIGRID_FIELDS))
    columns = {name: table[:, k] for k, name in enumerate(SIGRID_FIELDS)}
    for chart in CHART_NAMES:
        values = np.asarray(classes[chart], dtype=np.uint8)
        names = np.array([*CHARTS[chart].class_names, *[""] * (256 - CHARTS[chart].n_classes)], dtype=object)
        columns[chart] = values.astype(np.int16)
        columns[f"{chart}_NAME"] = names[values]
    return columns
