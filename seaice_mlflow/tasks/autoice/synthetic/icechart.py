"""Synthetic ice-chart polygons: the physical ice in each polygon and the egg code an analyst writes.

A polygon holds up to three ice components (partial concentration in tenths, stage of
development, form of ice). From them the generator writes a WMO egg code (``polygon_codes``
row) and, independently, the chart the code means (:meth:`PolygonIce.chart_classes`): the
dominant class is the one holding >= 65 % of the total concentration after grouping equal
classes. The reader decodes the code with the starter pack's literal algorithm; the tests check
that both agree for every generated polygon.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from seaice_mlflow.tasks.autoice.charts import IGNORE_INDEX
from seaice_mlflow.tasks.autoice.files.eggcode import DOMINANCE_THRESHOLD, NOT_FILLED

#: Physical forms that the chart masks for FLOE (spec: fast, pancake, shuga and level ice).
FAST, PANCAKE = -1, -2
#: Glacier ice (icebergs): stage code 98, masked for SOD.
GLACIER = -3

STAGE_CODES: dict[int, tuple[int, ...]] = {
    1: (81, 82),
    2: (83, 84, 85),
    3: (87, 88, 89),
    4: (86, 91, 93),
    5: (95, 96, 97),
    GLACIER: (98,),
}
FORM_CODES: dict[int, tuple[int, ...]] = {
    1: (2,),
    2: (3,),
    3: (4,),
    4: (5,),
    5: (6, 7),
    6: (9, 10),
    FAST: (8,),
    PANCAKE: (22, 1, 21),
}


@dataclass(frozen=True)
class Component:
    """One ice type in a polygon."""

    tenths: int  # partial concentration, 1..10
    stage: int  # SOD class 1..5 or GLACIER
    form: int  # FLOE class 1..6, FAST or PANCAKE


@dataclass
class PolygonIce:
    """The ice of one chart polygon. ``total`` None means the analyst gave no concentration."""

    poly_id: int
    total: int | None
    components: list[Component] = field(default_factory=list)
    water_type: bool = False  # POLY_TYPE "W"
    stage_reported: bool = True
    form_reported: bool = True

    def chart_classes(self) -> tuple[int, int, int]:
        """(SIC, SOD, FLOE) this polygon's egg code stands for; 255 = masked."""
        if self.water_type or self.total == 0:
            return 0, 0, 0
        if self.total is None:
            return IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX
        sod = self._dominant([c.stage for c in self.components]) if self.stage_reported else IGNORE_INDEX
        masked_form = any(c.form in (FAST, PANCAKE) for c in self.components)
        floe = IGNORE_INDEX
        if self.form_reported and not masked_form:
            floe = self._dominant([c.form for c in self.components])
        return self.total, sod, floe

    def _dominant(self, classes: list[int]) -> int:
        shares: dict[int, int] = {}
        for cls, comp in zip(classes, self.components):
            shares[cls] = shares.get(cls, 0) + comp.tenths
        cls, tenths = max(shares.items(), key=lambda kv: kv[1])
        if tenths / self.total < DOMINANCE_THRESHOLD or cls == GLACIER:
            return IGNORE_INDEX
        return cls

    def egg_code(self, rng: np.random.Generator) -> tuple[list[int], str]:
        """The 13 integer columns of this polygon's ``polygon_codes`` row and its POLY_TYPE."""
        row = [self.poly_id] + [NOT_FILLED] * 12
        if self.water_type:
            return row, "W"
        if self.total is None:
            return row, "I"
        if self.total == 0:
            row[1] = int(rng.choice([0, 1, 2, 55]))
            return row, "I"
        fast = any(c.form == FAST for c in self.components)
        row[1] = 10 * self.total if self.total < 10 else (92 if fast else 91)
        # WMO order: thickest (oldest) ice first.
        ordered = sorted(self.components, key=lambda c: c.stage if c.stage > 0 else 6, reverse=True)
        single = len(ordered) == 1 and (ordered[0].tenths == 10 or rng.random() < 0.5)
        for slot, comp in enumerate(ordered):
            conc, stage, form = 2 + 3 * slot, 3 + 3 * slot, 4 + 3 * slot
            row[conc] = NOT_FILLED if single else 10 * comp.tenths
            if self.stage_reported:
                row[stage] = int(rng.choice(STAGE_CODES[comp.stage]))
            if self.form_reported:
                row[form] = int(rng.choice(FORM_CODES[comp.form]))
        return row, "I"


def split_tenths(rng: np.random.Generator, total: int, n: int) -> list[int]:
    """Split ``total`` tenths into ``n`` parts of at least one tenth (fairly balanced), largest first."""
    n = max(1, min(n, total))
    parts = 1 + rng.multinomial(total - n, rng.dirichlet(np.full(n, 2.0)))
    return sorted(parts.tolist(), reverse=True)


def neighbour_class(rng: np.random.Generator, cls: int, n_classes: int, exclude: set[int]) -> int:
    """A class next to ``cls`` (ice types in one polygon are usually similar), not in ``exclude``."""
    choices = [c for c in (cls - 1, cls + 1, cls - 2, cls + 2) if 1 <= c < n_classes and c not in exclude]
    return int(rng.choice(choices[:2])) if choices else cls


def make_ice_polygon(
    rng: np.random.Generator,
    poly_id: int,
    total: int,
    stage: int,
    form: int,
    near_land: bool,
) -> PolygonIce:
    """An ice polygon of ``total`` tenths whose main ice is ``stage``/``form``.

    Secondary ice types are similar but not identical; fast ice near land, pancake for young
    ice, unreported stage/form and missing concentration occur at realistic rates.
    """
    if rng.random() < 0.02:
        return PolygonIce(poly_id, None)
    if near_land and total == 10 and rng.random() < 0.6:
        return PolygonIce(poly_id, 10, [Component(10, stage, FAST)])
    n = int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25])) if total >= 2 else 1
    tenths = split_tenths(rng, total, n)
    stages, forms = [stage], [form]
    for _ in tenths[1:]:
        same_stage = rng.random() < 0.2 and stages.count(stage) < 2
        avoid = set(stages) if len(stages) > 1 else set()
        stages.append(stage if same_stage else neighbour_class(rng, stage, 6, avoid))
        same_form = rng.random() < 0.45 and forms.count(form) < 2
        forms.append(form if same_form else neighbour_class(rng, form, 6, set(forms) if len(forms) > 1 else set()))
    for i in range(len(stages)):
        if stages.count(stages[i]) == 3:  # avoid A = B = C: the starter pack merges it wrongly
            stages[i] = neighbour_class(rng, stages[i], 6, {stages[i]})
        if forms.count(forms[i]) == 3:
            forms[i] = neighbour_class(rng, forms[i], 6, {forms[i]})
    forms = [PANCAKE if s <= 2 and rng.random() < 0.25 else f for s, f in zip(stages, forms)]
    components = [Component(t, s, f) for t, s, f in zip(tenths, stages, forms)]
    return PolygonIce(poly_id, total, components, stage_reported=rng.random() > 0.03, form_reported=rng.random() > 0.08)


def make_water_polygon(rng: np.random.Generator, poly_id: int, near_land: bool) -> PolygonIce:
    """Open water, coded as a W polygon or as an I polygon with an ice-free concentration code;
    near land sometimes bergy water with icebergs (FLOE bergs, glacier stage)."""
    if near_land and rng.random() < 0.04:
        return PolygonIce(poly_id, 1, [Component(1, GLACIER, 6)])
    return PolygonIce(poly_id, 0, water_type=rng.random() < 0.6)
