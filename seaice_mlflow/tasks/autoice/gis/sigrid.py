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
* a class's code is the first code of eggcode's code -> class table that gives that class, e.g. SIC 10 ->
  ``91`` (9+/10), SOD 4 -> ``86`` (first-year ice), FLOE 6 -> ``09`` (growlers, bergy bits);
* SIC 0 is a water polygon: ``POLY_TYPE`` ``W``, ``CT`` ``00``, no stage or form;
* a masked chart (255) is ``99`` (unknown); ``CB`` ... ``CD`` are not filled.

So :func:`~seaice_mlflow.tasks.autoice.files.eggcode.decode_polygons` turns the codes back into the same
classes (wherever SIC 0 goes with SOD 0 and FLOE 0, as in the AutoICE charts).
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


def reverse_codes(table: Mapping[int, int], n_classes: int) -> tuple[int, ...]:
    """The code of each class 0..n-1: the first code of ``table`` (code -> class) that gives the class."""
    first: dict[int, int] = {}
    for code, cls in table.items():
        first.setdefault(cls, code)
    missing = [k for k in range(n_classes) if k not in first]
    if missing:
        raise ValueError(f"no code gives class(es) {missing}")
    return tuple(first[k] for k in range(n_classes))


def class_codes(chart: str) -> tuple[int, ...]:
    """The SIGRID-3 code of each class of ``chart`` (CT for SIC, SA for SOD, FA for FLOE)."""
    table = {"SIC": SIC_CODES, "SOD": SOD_CODES, "FLOE": FLOE_CODES}[chart]
    return reverse_codes(table, CHARTS[chart].n_classes)


def encode(chart: str, classes: np.ndarray) -> np.ndarray:
    """Codes of ``classes`` (uint8) of ``chart``; 99 (unknown) for a masked or unknown class."""
    codes = np.asarray(class_codes(chart) + (UNKNOWN,) * (256 - CHARTS[chart].n_classes), dtype=np.int64)
    return codes[np.asarray(classes, dtype=np.uint8)]


def sigrid_table(sic: np.ndarray, sod: np.ndarray, floe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The integer code table (n, 13: poly_id, CT, CA, SA, FA, CB, ...; ids from 1) and POLY_TYPE of
    polygons with these classes, in the layout of eggcode's ``polygon_codes``."""
    sic = np.asarray(sic, dtype=np.uint8)
    codes = np.full((len(sic), len(CODE_COLUMNS) - 2), NOT_FILLED, dtype=np.int64)
    codes[:, POLY_ID] = np.arange(1, len(sic) + 1)
    codes[:, CT] = encode("SIC", sic)
    water = sic == 0
    codes[:, PARTIAL_STAGE[0]] = np.where(water, NOT_FILLED, encode("SOD", sod))
    codes[:, PARTIAL_FORM[0]] = np.where(water, NOT_FILLED, encode("FLOE", floe))
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
