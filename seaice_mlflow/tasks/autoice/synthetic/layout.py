"""Scene-wide layout of a synthetic scene: identity, swath, geolocation, land, chart polygons.

Everything here is decided once per scene (80 m grid, 40 m for the swath and tie points);
per-pixel radar values are drawn strip by strip in :mod:`radar`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from scipy.stats import norm

from seaice_mlflow.tasks.autoice.charts import REAL_CLASS_FREQUENCIES
from seaice_mlflow.tasks.autoice.files.naming import CIS_REGIONS, DMI_REGIONS
from seaice_mlflow.tasks.autoice.files.raw import TiePoints
from seaice_mlflow.tasks.autoice.files.variables import distance_zone
from seaice_mlflow.tasks.autoice.synthetic.fields import SmoothField, octaves, sample_sum
from seaice_mlflow.tasks.autoice.synthetic.icechart import PolygonIce, make_ice_polygon, make_water_polygon

PIXEL_KM = 0.08
TIE_POINTS = 21
#: 80 m rows generated at a time: a multiple of the 25-pixel 2 km cell.
STRIP_ROWS = 250


@dataclass(frozen=True)
class SceneIdentity:
    key: str
    provider: str
    time: datetime
    raw_name: str  # raw file name (original_id)
    product_id: str  # Sentinel-1 product id (upstream_id)
    icechart_id: str


def make_identity(rng: np.random.Generator) -> SceneIdentity:
    """A plausible acquisition (2018-2021, mostly winter) with AI4Arctic file names."""
    provider = "dmi" if rng.random() < 0.6 else "cis"
    month = int(rng.choice(np.arange(1, 13), p=np.array([10, 10, 10, 9, 8, 8, 8, 8, 7, 7, 7, 8]) / 100))
    start = datetime(int(rng.integers(2018, 2022)), month, 1) + timedelta(seconds=int(rng.integers(0, 27 * 86400)))
    stop = start + timedelta(seconds=int(rng.integers(60, 100)))
    product_id = (
        f"S1{'AB'[int(rng.integers(2))]}_EW_GRDM_1SDH_{start:%Y%m%dT%H%M%S}_{stop:%Y%m%dT%H%M%S}_"
        f"{int(rng.integers(1, 60000)):06d}_{int(rng.integers(0, 16**6)):06X}_"
        f"{int(rng.integers(0, 16**4)):04X}"
    )
    chart_time = start - timedelta(minutes=int(rng.integers(0, 180)))
    if provider == "dmi":
        chart = f"dmi_{chart_time:%Y%m%d%H%M}_{rng.choice(DMI_REGIONS)}_RIC"
    else:
        chart = f"cis_SGRDI{rng.choice(CIS_REGIONS)}_{chart_time:%Y%m%dT%H%M}Z_pl_a"
    return SceneIdentity(
        key=f"{start:%Y%m%dT%H%M%S}_{provider}",
        provider=provider,
        time=start,
        raw_name=f"{product_id}_icechart_{chart}.nc",
        product_id=product_id,
        icechart_id=chart,
    )


@dataclass(frozen=True)
class Swath:
    """The radar footprint: a rotated rectangle inside the 40 m image, range along ``v``."""

    center: tuple[float, float]
    theta: float
    half_along: float
    half_across: float

    def coords(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Along-track ``u`` and across-track ``v`` (40 m pixels) of a rows x cols grid."""
        dy = np.asarray(rows, float)[:, None] - self.center[0]
        dx = np.asarray(cols, float)[None, :] - self.center[1]
        c, s = np.cos(self.theta), np.sin(self.theta)
        return dy * c + dx * s, -dy * s + dx * c

    def mask(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        u, v = self.coords(rows, cols)
        return (np.abs(u) <= self.half_along) & (np.abs(v) <= self.half_across)

    def range_fraction(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Position across the swath, 0 (near range) to 1 (far range)."""
        _, v = self.coords(rows, cols)
        return (v + self.half_across) / (2 * self.half_across)

    def subswath(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """EW sub-swath number 1..5 inside the swath, 0 outside."""
        sub = np.clip(np.floor(self.range_fraction(rows, cols) * 5), 0, 4).astype(np.uint8) + 1
        return np.where(self.mask(rows, cols), sub, 0).astype(np.uint8)


def make_swath(rng: np.random.Generator, shape40: tuple[int, int]) -> Swath:
    """A swath tilted by 3-12 degrees that fills most of the image."""
    theta = np.deg2rad(rng.uniform(3, 12)) * rng.choice([-1, 1])
    cy, cx = (shape40[0] - 1) / 2, (shape40[1] - 1) / 2
    c, s = np.cos(abs(theta)), np.sin(abs(theta))
    ry, rx = 0.97 * cy, 0.97 * cx
    # corners of the rotated rectangle touch the image: a c + b s = ry, a s + b c = rx
    a = (ry * c - rx * s) / (c * c - s * s)
    b = (rx * c - ry * s) / (c * c - s * s)
    return Swath((cy, cx), float(theta), float(max(a, 0.3 * cy)), float(max(b, 0.3 * cx)))


def make_tie_points(rng: np.random.Generator, shape40: tuple[int, int], swath: Swath, provider: str) -> TiePoints:
    """21 x 21 geolocation grid: lat/lon of a rotated local plane, incidence angle linear in range."""
    lines = np.round(np.linspace(0, shape40[0] - 1, TIE_POINTS))
    samples = np.round(np.linspace(0, shape40[1] - 1, TIE_POINTS))
    if provider == "dmi":
        lat0, lon0 = rng.uniform(60, 80), rng.uniform(-60, -12)
    else:
        lat0, lon0 = rng.uniform(47, 75), rng.uniform(-95, -52)
    heading = rng.uniform(0, 2 * np.pi)
    dy = (lines[:, None] - shape40[0] / 2) * PIXEL_KM / 2
    dx = (samples[None, :] - shape40[1] / 2) * PIXEL_KM / 2
    north = dy * np.cos(heading) - dx * np.sin(heading)
    east = dy * np.sin(heading) + dx * np.cos(heading)
    latitude = lat0 + north / 111.2
    longitude = lon0 + east / (111.2 * np.cos(np.deg2rad(lat0)))
    near, far = rng.uniform(18.6, 19.6), rng.uniform(46.4, 47.2)
    fraction = swath.range_fraction(lines, samples)
    if rng.random() < 0.3:  # the other pass direction: incidence grows to the left
        fraction = 1 - fraction
    incidence = near + (far - near) * fraction
    return TiePoints(lines, samples, latitude, longitude, incidence)


def make_land(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Land mask (80 m) and distance-to-land zone ids (0 on land, 1..41 at sea).

    40 % of scenes see no land; the others have a coastline with fjords and islands. Distance
    counts to the land in the scene or to a coast beyond its edge, whichever is nearer.
    """
    h, w = shape
    direction = rng.uniform(0, 2 * np.pi)
    rows, cols = np.arange(h), np.arange(w)
    ramp_r = (rows[:, None] / max(h, w)) * np.cos(direction)
    ramp_c = (cols[None, :] / max(h, w)) * np.sin(direction)
    offshore_km = rng.uniform(5, 250)
    ramp = ramp_r + ramp_c - min(0, np.cos(direction)) - min(0, np.sin(direction))
    virtual_km = offshore_km + ramp * max(h, w) * PIXEL_KM
    if rng.random() < 0.4:
        land = np.zeros(shape, dtype=bool)
        return land, distance_zone(virtual_km)
    terrain = octaves(rng, shape, (max(h, w) / 2.5, 60.0, 10.0), (0.8, 0.3, 0.12))
    field = np.empty(shape, dtype=np.float32)
    for r0 in range(0, h, STRIP_ROWS):
        rr = rows[r0 : r0 + STRIP_ROWS]
        field[r0 : r0 + STRIP_ROWS] = sample_sum(terrain, rr, cols) - 2.0 * (ramp_r[r0 : r0 + STRIP_ROWS] + ramp_c)
    land = field > np.quantile(field[::4, ::4], 1 - rng.uniform(0.03, 0.3))
    sea_km = ndimage.distance_transform_edt(~land).astype(np.float32) * PIXEL_KM
    return land, distance_zone(np.minimum(sea_km, virtual_km))


@dataclass
class ChartLayout:
    """Polygons of the ice chart: raster of polygon index (-1 on land) and each polygon's ice."""

    index: np.ndarray  # (H, W) int16 index into ``polygons``
    polygons: list[PolygonIce]
    pack: np.ndarray  # (n,) 0..1 position from the ice edge (0) to the pack core (1)

    def classes(self) -> dict[str, np.ndarray]:
        """Per-polygon (SIC, SOD, FLOE) as three int16 arrays (the chart the codes mean)."""
        table = np.array([p.chart_classes() for p in self.polygons], dtype=np.int16).reshape(-1, 3)
        return {"SIC": table[:, 0], "SOD": table[:, 1], "FLOE": table[:, 2]}


def _inverse_cdf(frequencies: tuple[float, ...], u: float, first_class: int) -> int:
    cdf = np.cumsum(frequencies) / np.sum(frequencies)
    return int(first_class + np.searchsorted(cdf, np.clip(u, 0, 1 - 1e-9), side="right"))


def _correlated_uniform(rng: np.random.Generator, u: float, rho: float) -> float:
    """A uniform variate correlated with the uniform ``u`` (Gaussian copula), so that class
    frequencies drawn through an inverse CDF keep their target marginals."""
    z = rho * norm.ppf(np.clip(u, 1e-3, 1 - 1e-3)) + np.sqrt(1 - rho**2) * rng.standard_normal()
    return float(norm.cdf(z))


def make_chart(rng: np.random.Generator, shape: tuple[int, int], land: np.ndarray, zones: np.ndarray) -> ChartLayout:
    """Voronoi polygons with wiggly borders; ice classes follow an ice-edge-to-pack gradient.

    The ice fraction of the scene varies (mean about the 43 % of the real charts) and class
    frequencies within the ice follow the real histograms of spec section 4.
    """
    h, w = shape
    spacing = 700.0  # about 56 km between polygon centres, as in the real charts
    n = int(np.clip(round(h * w / spacing**2), 8, 80))
    seeds = np.column_stack([rng.uniform(0, h, n), rng.uniform(0, w, n)])
    scale = np.sqrt(h * w / n)
    warp = (SmoothField(rng, shape, scale / 2), SmoothField(rng, shape, scale / 2))
    tree = cKDTree(seeds)
    index = np.empty(shape, dtype=np.int16)
    cols = np.arange(w)
    for r0 in range(0, h, STRIP_ROWS):
        rows = np.arange(r0, min(r0 + STRIP_ROWS, h))
        y = rows[:, None] + 0.25 * scale * warp[0].sample(rows, cols)
        x = cols[None, :] + 0.25 * scale * warp[1].sample(rows, cols)
        _, nearest = tree.query(np.column_stack([y.ravel(), x.ravel()]), workers=-1)
        index[rows[0] : rows[-1] + 1] = nearest.reshape(len(rows), w)
    index[land] = -1

    area = np.bincount(index[index >= 0], minlength=n).astype(float)
    near_land = ndimage.minimum(zones, labels=index + 1, index=np.arange(1, n + 1)) <= 5
    near_land = np.where(area > 0, near_land, False)
    pack_field = SmoothField(rng, shape, max(h, w) / 1.5)
    pack_value = pack_field.sample(seeds[:, 0], seeds[:, 1]).diagonal() + 0.35 * rng.standard_normal(n)
    order = np.argsort(-pack_value)  # iciest first
    ice_fraction = rng.beta(1.3, 1.7)  # mean 0.43, the ice share of the real charts
    share = area[order] / max(area.sum(), 1)
    middle = np.cumsum(share) - share / 2  # sea area icier than each polygon's middle
    pack = np.empty(n)
    polygons: list[PolygonIce | None] = [None] * n
    poly_ids = rng.permutation(np.arange(1, 4 * n + 1))[:n]
    for rank, p in enumerate(order):
        pack[p] = np.clip(1 - middle[rank] / max(ice_fraction, 1e-6), 0, 1)  # 1 = pack core, 0 = ice edge
        if middle[rank] >= ice_fraction:
            polygons[p] = make_water_polygon(rng, int(poly_ids[p]), bool(near_land[p]))
            continue
        sic = _inverse_cdf(REAL_CLASS_FREQUENCIES["SIC"][1:], _correlated_uniform(rng, pack[p], 0.8), 1)
        maturity = _correlated_uniform(rng, pack[p], 0.6)
        stage = _inverse_cdf(REAL_CLASS_FREQUENCIES["SOD"][1:], maturity, 1)
        form = _inverse_cdf(REAL_CLASS_FREQUENCIES["FLOE"][1:6], _correlated_uniform(rng, maturity, 0.7), 1)
        polygons[p] = make_ice_polygon(rng, int(poly_ids[p]), sic, stage, form, bool(near_land[p]))
    return ChartLayout(index=index, polygons=polygons, pack=pack)


def ice_edge_quantile(concentration: np.ndarray) -> np.ndarray:
    """Threshold on a unit-variance field that leaves ``concentration`` of the pixels above it."""
    return norm.ppf(1 - np.clip(concentration, 1e-4, 1 - 1e-4)).astype(np.float32)
