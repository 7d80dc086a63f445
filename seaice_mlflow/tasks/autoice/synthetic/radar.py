"""Sentinel-1 EW backscatter (HH, HV in dB, 40 m) of a synthetic scene, drawn strip by strip.

Physics kept (C-band, winter conditions, NERSC-denoised):

* each ice stage has its own level, incidence-angle slope and *texture*: new ice dark and
  smooth, young ice bright and speckly (frost flowers, rafting), first-year ice smooth with
  ridges, old ice bright in HV and mottled; so stage is told apart by texture, not level alone;
* floe size sets the spatial scale of the ice/water pattern (cake ice unresolved, vast floes
  tens of pixels), with bright floe edges; leads cross compact ice; icebergs are bright points;
* open water follows the wind (ERA5 field): dark when calm, as bright as ice in a gale;
* HV sits on a residual noise floor with scalloping across the five EW sub-swaths;
* multiplicative speckle with 5 looks per 40 m pixel; NaN outside the swath.

In a melt-season scene (``melt=True``) wet snow masks the ice's surface and volume scattering:
every stage moves towards one wet-ice level (HH about -18 dB, HV about -28 dB, near the HV noise
floor), keeping only a third of its dry contrast, with half the texture and ridges; melt ponds
(a smooth field, about a quarter of the ice) scatter like the wind-roughened open water around
them. So ice types and ice and water are harder to tell apart in summer, as in real C-band SAR.
The charts and the radiometer's ice fractions do not change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seaice_mlflow.tasks.autoice.files.raw import TiePoints
from seaice_mlflow.tasks.autoice.synthetic.fields import SmoothField
from seaice_mlflow.tasks.autoice.synthetic.icechart import FAST, GLACIER, PANCAKE
from seaice_mlflow.tasks.autoice.synthetic.layout import ChartLayout, Swath, ice_edge_quantile

LOOKS = 5.0
BORDER_OFFSET_PX = 12.0

#: stage -> (HH dB, HV dB at 35 deg, dB per degree, texture dB, texture scale px, ridge density, ridge dB)
STAGE_SIGNATURE: dict[int, tuple[float, ...]] = {
    1: (-22.0, -30.0, -0.30, 0.6, 8.0, 0.00, 0.0),  # new ice, nilas
    2: (-15.5, -25.5, -0.25, 2.2, 1.2, 0.02, 2.0),  # young ice
    3: (-18.0, -26.0, -0.22, 1.0, 3.0, 0.03, 3.0),  # thin first-year ice
    4: (-16.5, -23.5, -0.20, 0.7, 4.0, 0.08, 4.0),  # thick first-year ice
    5: (-12.5, -19.5, -0.15, 2.5, 10.0, 0.05, 3.0),  # old ice
    GLACIER: (-4.0, -12.0, -0.10, 1.5, 1.0, 0.00, 0.0),  # icebergs
}
#: Melt season: the HH/HV level wet snow pulls every stage towards, the share of a stage's dry
#: difference from it that remains, and the factor on texture and ridges.
WET_ICE_DB = (-18.0, -28.0)
WET_CONTRAST = 0.35
WET_TEXTURE = 0.5
#: Melt ponds: correlation length (80 m px) and the pond fraction of the ice (mean, spread, max).
POND_SCALE_PX = 4.0
POND_FRACTION = (0.25, 0.15, 0.6)


def wet_signature(signature: tuple[float, ...]) -> tuple[float, ...]:
    """A stage's :data:`STAGE_SIGNATURE` entry under wet snow (melt season)."""
    hh, hv, slope, texture, scale, density, ridge_db = signature
    return (
        WET_ICE_DB[0] + WET_CONTRAST * (hh - WET_ICE_DB[0]),
        WET_ICE_DB[1] + WET_CONTRAST * (hv - WET_ICE_DB[1]),
        slope,
        WET_TEXTURE * texture,
        scale,
        density,
        WET_TEXTURE * ridge_db,
    )


#: floe class -> spatial scale (80 m px) of the ice/water pattern; None = unresolved mixture.
FLOE_SCALE: dict[int, float | None] = {1: None, 2: 1.2, 3: 3.5, 4: 12.0, 5: 45.0, PANCAKE: None}


@dataclass
class PolygonTable:
    """Per-polygon physical ice, as arrays indexed by polygon index."""

    concentration: np.ndarray  # (n,) true ice fraction
    cum_share: np.ndarray  # (n, 3) cumulative share of the ice components
    stage: np.ndarray  # (n, 3)
    form: np.ndarray  # (n, 3)
    berg: np.ndarray  # (n,) bool: open water with icebergs

    @classmethod
    def from_chart(cls, rng: np.random.Generator, chart: ChartLayout) -> PolygonTable:
        n = len(chart.polygons)
        conc, berg = np.zeros(n), np.zeros(n, bool)
        cum, stage, form = np.ones((n, 3)), np.ones((n, 3), np.int16), np.full((n, 3), 5, np.int16)
        for i, poly in enumerate(chart.polygons):
            comps = poly.components
            if not comps or not poly.total:
                continue
            if any(c.stage == GLACIER for c in comps):
                berg[i] = True
                continue
            conc[i] = np.clip(poly.total / 10 + rng.normal(0, 0.04), 0.03, 1.0)
            shares = np.cumsum([c.tenths for c in comps]) / sum(c.tenths for c in comps)
            cum[i, : len(comps)] = shares
            stage[i, : len(comps)] = [c.stage for c in comps]
            form[i, : len(comps)] = [c.form for c in comps]
            stage[i, len(comps) :] = comps[-1].stage
            form[i, len(comps) :] = comps[-1].form
        return cls(conc, cum, stage, form, berg)


class RadarModel:
    """Draws the backscatter of a scene strip by strip (deterministic per seed)."""

    def __init__(
        self,
        rng: np.random.Generator,
        shape: tuple[int, int],
        chart: ChartLayout,
        land: np.ndarray,
        swath: Swath,
        tie: TiePoints,
        wind: tuple[SmoothField, SmoothField],
        wind_mean: tuple[float, float],
        seed: tuple[int, ...],
        melt: bool = False,
    ):
        self.shape, self.chart, self.land, self.swath, self.tie = shape, chart, land, swath, tie
        self.wind, self.wind_mean, self.seed = wind, wind_mean, seed
        self.table = PolygonTable.from_chart(rng, chart)
        self.type_field = SmoothField(rng, shape, 25.0)
        self.floe_fields = {f: SmoothField(rng, shape, s) for f, s in FLOE_SCALE.items() if s}
        self.fine_field = SmoothField(rng, shape, 0.8)
        self.texture = {s: SmoothField(rng, shape, sig[4]) for s, sig in STAGE_SIGNATURE.items()}
        self.ridges = SmoothField(rng, shape, 6.0)
        self.leads = SmoothField(rng, shape, 30.0)
        self.streaks = SmoothField(rng, shape, 20.0)
        self.terrain = SmoothField(rng, shape, 3.0)
        # Analysts draw polygon borders only approximately: the ice under the SAR is the chart
        # polygon of a point displaced by about 1 km (smoothly varying).
        self.border_offset = (SmoothField(rng, shape, 60.0), SmoothField(rng, shape, 60.0))
        # drawn last, so that a freeze-season scene is what it was before melt seasons existed
        self.ponds = SmoothField(rng, shape, POND_SCALE_PX) if melt else None

    def signature(self, stage: int) -> tuple[float, ...]:
        """The backscatter signature of ``stage`` in this scene's season (icebergs stay dry)."""
        dry = STAGE_SIGNATURE[stage]
        return wet_signature(dry) if self.ponds is not None and stage != GLACIER else dry

    def ice_cover(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ice fraction (0..1) and ice stage of each 80 m pixel of ``rows``."""
        cols = np.arange(self.shape[1])
        poly = self.physical_polygon(rows, cols)
        sea = poly >= 0
        p = np.where(sea, poly, 0)
        t = self.table
        u = 0.5 * (1 + np.tanh(0.8 * self.type_field.sample(rows, cols)))  # ~ uniform 0..1
        comp = (u > t.cum_share[p, 0]).astype(np.int16) + (u > t.cum_share[p, 1])
        comp = np.minimum(comp, 2)
        stage = t.stage[p, comp]
        form = t.form[p, comp]
        conc = np.where(sea, t.concentration[p], 0.0)

        phi = np.zeros(poly.shape, np.float32)
        for f, field in self.floe_fields.items():
            m = form == f
            if m.any():
                values = field.sample(rows, cols)[m]
                phi[m] = 1 / (1 + np.exp(-(values - ice_edge_quantile(conc[m])) / 0.12))
        mixed = (form == 1) | (form == PANCAKE)
        if mixed.any():
            phi[mixed] = np.clip(conc[mixed] + 0.12 * self.fine_field.sample(rows, cols)[mixed], 0, 1)
        phi[form == FAST] = 1.0
        compact = (conc >= 0.85) & (stage >= 3)
        lead = compact & (np.abs(self.leads.sample(rows, cols)) < 0.025)
        stage = np.where(lead, 1, stage)
        bergs = t.berg[p] & (self.fine_field.sample(rows, cols) > 3.0)
        phi[bergs] = 1.0
        stage = np.where(bergs, GLACIER, stage)
        phi[~sea] = 0.0
        return phi, stage

    def physical_polygon(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Index of the polygon whose ice covers each pixel (-1 on land)."""
        h, w = self.shape
        dy = np.rint(BORDER_OFFSET_PX * self.border_offset[0].sample(rows, cols)).astype(np.int64)
        dx = np.rint(BORDER_OFFSET_PX * self.border_offset[1].sample(rows, cols)).astype(np.int64)
        displaced = self.chart.index[np.clip(rows[:, None] + dy, 0, h - 1), np.clip(cols[None, :] + dx, 0, w - 1)]
        charted = self.chart.index[rows]
        return np.where((displaced >= 0) & (charted >= 0), displaced, charted)

    def strip(self, row: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """HH and HV dB on the 40 m grid for 80 m rows ``[row, row + height)``, plus the 80 m ice
        fraction and old-ice fraction (for the radiometer)."""
        h, w = self.shape
        rows_halo = np.arange(max(row - 1, 0), min(row + height + 1, h))
        phi_halo, stage_halo = self.ice_cover(rows_halo)
        top = row - rows_halo[0]
        gy, gx = np.gradient(phi_halo) if len(rows_halo) > 1 else (0 * phi_halo, np.gradient(phi_halo, axis=1))
        edge = np.clip(np.hypot(gy, gx), 0, 1)[top : top + height]
        phi, stage = phi_halo[top : top + height], stage_halo[top : top + height]
        rows, cols = np.arange(row, row + height), np.arange(w)

        incidence = self.tie.incidence_at(2 * rows + 0.5, 2 * cols + 0.5).astype(np.float32) - 35.0
        hh_ice = np.zeros((height, w), np.float32)
        hv_ice = np.zeros((height, w), np.float32)
        ridge_field = np.abs(self.ridges.sample(rows, cols))
        for s in STAGE_SIGNATURE:
            m = stage == s
            if not m.any():
                continue
            hh, hv, slope, tex, _, density, ridge_db = self.signature(s)
            texture = tex * self.texture[s].sample(rows, cols)[m]
            ridge = ridge_db * (ridge_field[m] < density / 0.8)
            hh_ice[m] = hh + slope * incidence[m] + texture + ridge
            hv_ice[m] = hv + 0.8 * slope * incidence[m] + 0.8 * texture + 0.7 * ridge

        speed = np.hypot(
            self.wind_mean[0] + 3 * self.wind[0].sample(rows, cols),
            self.wind_mean[1] + 3 * self.wind[1].sample(rows, cols),
        )
        streaks = 0.8 * self.streaks.sample(rows, cols)
        hh_water = -25 + 12 * (1 - np.exp(-np.maximum(speed - 1.5, 0) / 5)) - 0.55 * incidence + streaks
        hv_water = -31 + 0.4 * (speed - 5) - 0.3 * incidence + 0.5 * streaks

        ice_hh, ice_hv = db_to_power(hh_ice), db_to_power(hv_ice)
        if self.ponds is not None:  # ponds on the ice scatter like the open water
            mean, spread, most = POND_FRACTION
            pond = np.clip(mean + spread * self.ponds.sample(rows, cols), 0, most)
            pond[stage == GLACIER] = 0
            ice_hh = (1 - pond) * ice_hh + pond * db_to_power(hh_water)
            ice_hv = (1 - pond) * ice_hv + pond * db_to_power(hv_water)
        sigma_hh = phi * ice_hh + (1 - phi) * db_to_power(hh_water)
        sigma_hv = phi * ice_hv + (1 - phi) * db_to_power(hv_water)
        sigma_hh *= 1 + 1.5 * edge
        sigma_hv *= 1 + 1.0 * edge
        land = self.land[rows]
        if land.any():
            terrain = 2.5 * self.terrain.sample(rows, cols)[land]
            sigma_hh[land] = db_to_power(-9 + terrain - 0.1 * incidence[land])
            sigma_hv[land] = db_to_power(-17 + terrain - 0.1 * incidence[land])

        rows40, cols40 = np.arange(2 * row, 2 * (row + height)), np.arange(2 * w)
        rng = np.random.default_rng(np.random.SeedSequence([*self.seed, 7, row]))
        hh40 = upsample2(sigma_hh) * rng.gamma(LOOKS, 1 / LOOKS, (2 * height, 2 * w))
        fraction = self.swath.range_fraction(rows40, cols40) * 5 % 1
        floor = db_to_power(-30.5 + 1.5 * (2 * fraction - 1) ** 2)
        hv40 = (upsample2(sigma_hv) + floor) * rng.gamma(LOOKS, 1 / LOOKS, (2 * height, 2 * w))
        outside = ~self.swath.mask(rows40, cols40)
        hh_db = np.where(outside, np.nan, 10 * np.log10(hh40)).astype(np.float32)
        hv_db = np.where(outside, np.nan, 10 * np.log10(hv40)).astype(np.float32)
        return hh_db, hv_db, phi, phi * (stage == 5)


def db_to_power(db: np.ndarray) -> np.ndarray:
    return np.power(10.0, np.asarray(db, np.float32) / 10.0, dtype=np.float32)


def upsample2(values: np.ndarray) -> np.ndarray:
    """Each 80 m pixel repeated over its 2 x 2 block of 40 m pixels."""
    return np.repeat(np.repeat(values, 2, axis=0), 2, axis=1)
