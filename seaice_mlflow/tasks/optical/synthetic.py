"""Synthetic close-range ice photos in the PixelAnnotationTool layout (``seaice optical synth``).

Each photo is seen by a camera a few metres above a flat sea surface: rows below the horizon map to
ground coordinates (X across, Z away, metres), where the ice zones, floes, pancakes, ridges and melt
ponds are drawn, so objects and textures shrink towards the horizon and fine texture fades where a
pixel covers more ground than its wavelength. Sky, a distant shore and icebergs are drawn in the
image. Colours overlap between classes on purpose: dark level ice has the colour of water, melt ponds
and pancake interiors come close to it, snow on the shore is the snow of the ice, an overcast sky is
ice-white; what tells them apart is texture (waves, rims, chunks, blocks), edges and position.
Each photo has its own lighting (exposure, gradient, colour cast, haze, vignetting, noise).

Files per photo ``<stem>``: ``<stem>.png`` (RGB), ``<stem>_watershed_mask.png`` (R=G=B=id, 255 on region
boundaries), ``<stem>_mask.png`` (sparse marker scribbles, 0 unmarked), ``<stem>_color_mask.png``; plus
one ``config.json``. Photo ``i`` of a seed is the same whatever the number of photos; same seed, same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from seaice_mlflow.core.errors import ParameterError, SeaIceError
from seaice_mlflow.core.io import atomic_path
from seaice_mlflow.tasks.optical.config import SYNTH_MIN_SIZE, SYNTH_SIZE
from seaice_mlflow.tasks.optical.labels import CONFIG_NAME, IGNORE

SKY, WATER, SHORE, LEVEL, FLOE, BRASH, PANCAKE, POND, RIDGE, BERG = range(1, 11)  # id 0: the watershed fill
#: (id, name, category, colour) of the classes written to config.json.
CLASSES: tuple[tuple[int, str, str, tuple[int, int, int]], ...] = (
    (SKY, "sky", "scene", (135, 206, 235)),
    (WATER, "open water", "water", (0, 70, 160)),
    (SHORE, "shore", "scene", (120, 90, 50)),
    (LEVEL, "level ice", "ice", (230, 230, 230)),
    (FLOE, "ice floe", "ice", (255, 200, 0)),
    (BRASH, "brash ice", "ice", (200, 120, 255)),
    (PANCAKE, "pancake ice", "ice", (255, 120, 120)),
    (POND, "melt pond", "water", (0, 220, 220)),
    (RIDGE, "ridged ice", "ice", (110, 110, 110)),
    (BERG, "iceberg", "ice", (230, 0, 120)),
)
CATEGORIES = ("scene", "water", "ice")
_LATTICE = 64  # period of the noise lattices and cell tables
_FAR = 3000.0  # metres: ground beyond is drawn as at this distance


@dataclass(frozen=True)
class Ground:
    """Ground coordinates of each pixel below the horizon (metres), the ground length a pixel covers,
    and the camera they come from."""

    x: np.ndarray
    z: np.ndarray
    below: np.ndarray  # bool: under the horizon
    footprint: np.ndarray
    rows: np.ndarray  # image rows under the horizon line, negative above it
    focal: float = 1.0  # pixels
    height: float = 1.0  # metres above the surface


def synthesize_photos(out: str | Path, n_images: int, size: tuple[int, int] = SYNTH_SIZE, seed: int = 0) -> list[Path]:
    """Write ``n_images`` photos and their labels to ``out`` with one ``config.json``; returns the photo files."""
    out = Path(out)
    if n_images < 1:
        raise ParameterError("images", f"must be at least 1, got {n_images}")
    if len(size) != 2 or min(size) < SYNTH_MIN_SIZE:
        raise ParameterError("size", f"{'x'.join(map(str, size))} is too small; photos need {SYNTH_MIN_SIZE} px a side")
    if seed < 0:
        raise ParameterError("seed", f"must be 0 or more, got {seed}")
    if out.exists() and not out.is_dir():
        raise SeaIceError(f"{out} is a file; give a folder to write the photos to")
    _write_json(out / CONFIG_NAME, annotation_config())
    colours = np.full((256, 3), 255, dtype=np.uint8)  # boundaries white in the colour mask
    colours[[c[0] for c in CLASSES]] = [c[3] for c in CLASSES]
    written = []
    for index in range(n_images):
        rgb, ids = render_photo(np.random.default_rng([seed, index]), (int(size[0]), int(size[1])))
        stem = out / f"photo_{index:04d}"
        scribbles = marker_scribbles(np.random.default_rng([seed, index, 1]), ids)
        watershed = watershed_boundaries(ids)
        _write_png(stem.with_name(stem.name + ".png"), rgb)
        _write_png(stem.with_name(stem.name + "_watershed_mask.png"), np.repeat(watershed[..., None], 3, axis=2))
        _write_png(stem.with_name(stem.name + "_mask.png"), np.repeat(scribbles[..., None], 3, axis=2))
        _write_png(stem.with_name(stem.name + "_color_mask.png"), colours[watershed])
        written.append(stem.with_name(stem.name + ".png"))
    return written


def annotation_config() -> dict:
    """PixelAnnotationTool's ``config.json`` of the synthetic classes."""
    return {
        "labels": {
            name: {
                "categorie": category,
                "color": list(colour),
                "id": class_id,
                "id_categorie": CATEGORIES.index(category) + 1,
                "name": name,
            }
            for class_id, name, category, colour in CLASSES
        }
    }


def render_photo(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One photo: uint8 RGB (H, W, 3) and the dense class ids (H, W) of what it shows."""
    h, w = size
    ground = camera_ground(rng, h, w)
    season = rng.choice(["freeze", "winter", "melt"])
    ids = np.full((h, w), SKY, dtype=np.uint8)
    bias = (
        rng.normal(0.0, 0.25, 5)
        + {
            "freeze": (0.2, -0.3, -0.1, 0.2, 0.35),
            "winter": (-0.2, 0.3, 0.2, 0.0, -0.3),
            "melt": (0.15, 0.0, 0.3, 0.1, -0.5),
        }[season]
    )
    zone_scale = rng.uniform(60, 300)
    zones = np.argmax([fractal(rng, ground, zone_scale, 3) + b for b in bias], axis=0)
    zone_ids = np.array([WATER, LEVEL, FLOE, BRASH, PANCAKE], dtype=np.uint8)
    ids[ground.below] = zone_ids[zones][ground.below]
    # floes: cells of a jittered grid, displaced for ragged edges, some left out, gaps of water or brash
    spacing = rng.uniform(6, 40)
    warp = 0.2 * spacing
    shift_x, shift_z = (warp * fractal(rng, ground, spacing, 2) for _ in range(2))
    warped = replace(ground, x=ground.x + shift_x, z=ground.z + shift_z)
    f1, f2, cell = cells(rng, warped, spacing)
    floe_edge = (f2 - f1) * spacing / 2  # metres to the cell border
    kept = rng.random(_LATTICE * _LATTICE) < rng.uniform(0.55, 0.95)
    floe = (ids == FLOE) & (floe_edge > rng.uniform(0.03, 0.12) * spacing) & kept[cell]
    ids[(ids == FLOE) & ~floe] = BRASH if rng.random() < 0.4 else WATER
    ice = (ids == LEVEL) | (ids == FLOE)
    if season != "freeze" and rng.random() < 0.8:
        ridge_field = fractal(rng, ground, rng.uniform(25, 90), 2, stretch=(1.0, rng.uniform(0.3, 1.0)))
        ids[ice & (np.abs(ridge_field) < rng.uniform(0.03, 0.07))] = RIDGE
    if season == "melt":
        ponds = fractal(rng, ground, rng.uniform(3, 12), 3) > rng.uniform(0.25, 0.45)
        ids[((ids == LEVEL) | (ids == FLOE)) & ponds] = POND
    if rng.random() < 0.5:  # a shore on one side, its coastline running away from the camera
        side = rng.choice([-1.0, 1.0])
        coast = side * (rng.uniform(0.2, 0.6) * ground.z + rng.uniform(2, 30)) + 8 * fractal(rng, ground, 30, 3)
        ids[ground.below & (side * (ground.x - coast) > 0)] = SHORE
    if rng.random() < 0.6:  # distant hills over the horizon
        hills = np.abs(fractal(rng, _strip(w), rng.uniform(40, 160), 4))[0]
        land_top = rng.uniform(0.02, 0.12) * h * (0.3 + 2 * hills)
        ids[~ground.below & (-ground.rows < land_top[None, :])] = SHORE
    rgb, horizon_sky = paint(rng, ids, ground, season, floe_edge, cell)
    depth = np.where(ground.below, ground.z, np.where(ids == SHORE, 0.7 * _FAR, 0.0)).astype(np.float32)
    draw_icebergs(rng, ids, rgb, depth, ground)
    return finish(rng, haze(rng, rgb, depth, horizon_sky)), ids


def camera_ground(rng: np.random.Generator, h: int, w: int) -> Ground:
    """A camera (horizon row, roll, focal length, height) and the ground under each pixel."""
    horizon, roll = rng.uniform(0.15, 0.45) * h, rng.uniform(-0.05, 0.05)
    focal, height = rng.uniform(0.7, 1.3) * w, rng.uniform(3, 30)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rows = y - horizon - roll * (x - w / 2)
    z = np.minimum(focal * height / np.maximum(rows, 0.5), _FAR)
    return Ground((x - w / 2) * z / focal, z, rows > 0.5, z * z / (focal * height), rows, focal, height)


def fractal(
    rng: np.random.Generator, ground: Ground, scale: float, octaves: int, stretch: tuple[float, float] = (1.0, 1.0)
) -> np.ndarray:
    """Value noise over the ground (about -1..1) of features ``scale`` metres; octaves finer than a pixel fade."""
    total = np.zeros(ground.x.shape, dtype=np.float32)
    norm = 0.0
    for k in range(octaves):
        lattice = rng.standard_normal((_LATTICE, _LATTICE)).astype(np.float32)
        shift = rng.uniform(0, _LATTICE, 2)
        frequency = 2.0**k / scale
        fade = np.clip(1.5 - 2 * ground.footprint * frequency, 0, 1)
        coords = [ground.z * frequency * stretch[1] + shift[0], ground.x * frequency * stretch[0] + shift[1]]
        total += 0.5**k * fade * ndimage.map_coordinates(lattice, coords, order=1, mode="grid-wrap")
        norm += 0.5**k
    return total / norm


def cells(rng: np.random.Generator, ground: Ground, spacing: float) -> tuple[np.ndarray, ...]:
    """Cellular noise: distances to the nearest and second nearest cell point (in spacings) and the cell's number."""
    jitter = rng.random((2, _LATTICE, _LATTICE)).astype(np.float32)
    gx, gz = ground.x / spacing, ground.z / spacing
    ix, iz = np.floor(gx).astype(np.int64), np.floor(gz).astype(np.int64)
    f1 = np.full(gx.shape, np.inf, dtype=np.float32)
    f2 = f1.copy()
    cell = np.zeros(gx.shape, dtype=np.int64)
    for dz in (-1, 0, 1):
        for dx in (-1, 0, 1):
            cx, cz = (ix + dx) % _LATTICE, (iz + dz) % _LATTICE
            d = np.hypot(gx - (ix + dx) - jitter[0, cz, cx], gz - (iz + dz) - jitter[1, cz, cx])
            closer = d < f1
            f2 = np.where(closer, f1, np.minimum(f2, d))
            cell = np.where(closer, cz * _LATTICE + cx, cell)
            f1 = np.where(closer, d, f1)
    return f1, f2, cell


def paint(
    rng: np.random.Generator,
    ids: np.ndarray,
    ground: Ground,
    season: str,
    floe_edge: np.ndarray,
    floe_cell: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The surface colour (H, W, 3, floats 0..1) of every class before haze and lighting, and the horizon's."""
    h, w = ids.shape
    overcast = rng.random() < 0.5
    horizon_sky = rng.uniform(0.72, 0.9, 3) * ([1.0, 1.0, 1.0] if overcast else [0.85, 0.93, 1.0])
    zenith = horizon_sky * (rng.uniform(0.85, 1.0) if overcast else [0.45, 0.62, 0.92])
    snow = rng.uniform(0.8, 0.95) * np.array([1.0, 1.0, 1.02]) * rng.uniform(0.96, 1.04, 3)
    deep = rng.uniform([0.04, 0.1, 0.16], [0.16, 0.26, 0.36])
    dark_ice = deep * rng.uniform(0.9, 1.4) + rng.uniform(0.0, 0.08)  # nilas, wet ice: the colour of water
    level = dark_ice if rng.random() < (0.6 if season == "freeze" else 0.3) else snow
    rgb = np.zeros((h, w, 3), dtype=np.float32)

    def put(cls: int, colour: np.ndarray) -> None:
        where = ids == cls
        rgb[where] = np.broadcast_to(colour, (h, w, 3))[where]

    # sky: a gradient from the horizon up, clouds
    up = np.clip(-ground.rows / max(h, 1), 0, 1)[..., None] ** 0.7
    row, column = np.mgrid[0:h, 0:w].astype(np.float32)
    image = Ground(column, row, ground.below, np.zeros_like(ground.z), ground.rows)  # the image plane as a ground
    clouds = fractal(rng, image, rng.uniform(0.2, 0.6) * w, 4, stretch=(0.5, 1.2))[..., None]
    put(SKY, horizon_sky * (1 - up) + zenith * up + rng.uniform(0.05, 0.3) * np.clip(clouds, 0, None))
    # water: sky reflected more towards the horizon, wave crests parallel to it
    fresnel = np.clip(ground.z / (ground.z + rng.uniform(30, 300)), 0.05, 0.85)[..., None]
    waves = fractal(rng, ground, rng.uniform(1.5, 6), 4, stretch=(0.25, 1.6))[..., None]
    water = (deep * (1 - fresnel) + horizon_sky * fresnel) * (1 + rng.uniform(0.05, 0.4) * waves)
    put(WATER, water)
    # level ice and floes: smooth blotches; floes tinted one by one, with a rim
    blotches = 1 + rng.uniform(0.03, 0.1) * fractal(rng, ground, rng.uniform(8, 40), 3)[..., None]
    put(LEVEL, level * blotches)
    tint = rng.uniform(0.88, 1.06, _LATTICE * _LATTICE).astype(np.float32)[floe_cell][..., None]
    rim_width = rng.uniform(0.3, 1.2)
    rim = (np.clip(1 - floe_edge / rim_width, 0, 1) * np.clip(2 * rim_width / ground.footprint, 0, 1))[..., None]
    rim_colour = snow * 1.08 if rng.random() < 0.6 else deep * 0.6
    put(FLOE, (level * tint * blotches) * (1 - rim) + rim_colour * rim)
    # brash: chunks of ice in water; pancakes: grey discs with bright rims; ridges: shaded blocks
    put(BRASH, _mixture(rng, ground, rng.uniform(0.3, 1.5), water, snow * rng.uniform(0.7, 1.0), 0.5))
    f1, f2, _ = cells(rng, ground, spacing := rng.uniform(0.6, 2.5))
    interior = dark_ice * rng.uniform(1.2, 2.2)
    edge = np.clip(1 - (f2 - f1) / 0.25, 0, 1) * np.clip(spacing / ground.footprint - 0.5, 0, 1)
    far = (1 - np.clip(spacing / ground.footprint - 0.5, 0, 1))[..., None]
    near = interior * (1 - edge[..., None]) + snow * edge[..., None]
    put(PANCAKE, near * (1 - far) + (0.75 * interior + 0.25 * snow) * far)
    put(RIDGE, _mixture(rng, ground, rng.uniform(0.5, 1.5), level * 0.55, snow * 1.05, 0.5))
    pond = deep * rng.uniform(0.8, 1.2) + (rng.uniform(0.0, 0.15) * np.array([0.2, 1.0, 0.9]))
    put(POND, pond * (1 + 0.03 * waves))
    # shore: rock with snow patches; distant hills
    rock = rng.uniform([0.18, 0.15, 0.12], [0.4, 0.34, 0.28])
    patches = (fractal(rng, ground, rng.uniform(2, 10), 3) > rng.uniform(-0.2, 0.3))[..., None]
    grain = 1 + 0.15 * fractal(rng, ground, 0.7, 2)[..., None]
    far_land = ~ground.below
    put(SHORE, np.where(patches & ~far_land[..., None], snow, rock * grain))
    rgb[far_land & (ids == SHORE)] = (rock * 0.7 + horizon_sky * 0.3) * (
        1 + 0.2 * np.clip(clouds[far_land & (ids == SHORE)], -1, 1)
    )
    return rgb, horizon_sky


def draw_icebergs(
    rng: np.random.Generator, ids: np.ndarray, rgb: np.ndarray, depth: np.ndarray, ground: Ground
) -> None:
    """Up to two icebergs on the surface (far ones first), lit from one side; ``depth`` gets their distance."""
    w = ids.shape[1]
    nearest = ground.focal * ground.height / max(float(ground.rows.max()), 1.0)
    sun = rng.choice([-1.0, 1.0])
    white = rng.uniform(0.88, 1.0) * np.array([0.96, 0.99, 1.0])
    shadow = white * np.array([0.55, 0.68, 0.82]) * rng.uniform(0.8, 1.0)
    for distance in sorted(rng.uniform(max(2 * nearest, 30), 800, 2 if rng.random() < 0.3 else 1), reverse=True):
        if rng.random() < 0.4:
            continue
        half = ground.focal * rng.uniform(8, 60) / distance  # pixels
        tall = 2 * half * rng.uniform(0.12, 0.45)
        across = (np.arange(w) - rng.uniform(0.1, 0.9) * w) / half
        sharp = rng.choice([1.5, 4.0])  # dome or tabular
        bumps = 1 + 0.15 * fractal(rng, _strip(w), max(half / 2, 2), 3)[0]
        top = tall * np.clip(1 - np.abs(across) ** sharp, 0, 1) ** (1 / sharp) * bumps
        base = ground.focal * ground.height / distance
        berg = (np.abs(across) < 1)[None, :] & (ground.rows <= base) & (ground.rows >= base - top[None, :])
        lit = np.clip(0.5 + 0.6 * sun * across + 0.2 * fractal(rng, _strip(w), max(half / 6, 1), 2)[0], 0, 1)
        colour = shadow * (1 - lit[:, None]) + white * lit[:, None]
        ids[berg] = BERG
        rgb[berg] = np.broadcast_to(colour[None], rgb.shape)[berg]
        depth[berg] = distance


def haze(rng: np.random.Generator, rgb: np.ndarray, depth: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Far surfaces (``depth`` metres, 0 for the sky) turn to the horizon's colour."""
    amount = (1 - np.exp(-depth / rng.uniform(400, 4000)))[..., None]
    return rgb * (1 - amount) + colour * amount


def finish(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """Lighting and camera: exposure, gradient, colour cast, vignetting, contrast, blur, noise -> uint8."""
    h, w = rgb.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    gradient = 1 + rng.uniform(-0.3, 0.3) * (x / w - 0.5) + rng.uniform(-0.15, 0.15) * (y / h - 0.5)
    vignette = 1 - rng.uniform(0, 0.35) * (((x / w - 0.5) ** 2 + (y / h - 0.5) ** 2) * 2)
    light = (rng.uniform(0.65, 1.2) * gradient * vignette)[..., None] * rng.uniform(0.9, 1.1, 3)
    out = np.clip(rgb * light, 0, 1) ** rng.uniform(0.8, 1.25)
    out = ndimage.gaussian_filter(out, sigma=(rng.uniform(0.3, 0.9),) * 2 + (0,))
    out = out + rng.normal(0, rng.uniform(0.004, 0.02), out.shape)
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def watershed_boundaries(ids: np.ndarray) -> np.ndarray:
    """The dense label as the tool writes it: 255 on pixels whose right or lower neighbour differs."""
    out = ids.copy()
    edge = np.zeros(ids.shape, dtype=bool)
    edge[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    edge[:-1, :] |= ids[:-1, :] != ids[1:, :]
    out[edge] = IGNORE
    return out


def marker_scribbles(rng: np.random.Generator, ids: np.ndarray) -> np.ndarray:
    """An annotator's sparse markers: two short strokes of its id inside each class region, 0 elsewhere."""
    h, w = ids.shape
    out = np.zeros_like(ids)
    for class_id, *_ in CLASSES:
        inside = ndimage.binary_erosion(ids == class_id, iterations=2)
        points = np.argwhere(inside)
        if not len(points):
            continue
        for start in points[rng.integers(0, len(points), 2)]:
            angle = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.3, 20))
            path = start + np.cumsum(1.5 * np.stack([np.sin(angle), np.cos(angle)], axis=1), axis=0)
            rows, cols = np.clip(np.rint(path).astype(int), 0, [h - 1, w - 1]).T
            stroke = np.zeros_like(inside)
            stroke[rows, cols] = True
            out[ndimage.binary_dilation(stroke) & inside] = class_id
    return out


def _mixture(
    rng: np.random.Generator, ground: Ground, spacing: float, base: np.ndarray, chunk: np.ndarray, share: float
) -> np.ndarray:
    """Cells of ``spacing`` metres, a ``share`` of them ``chunk`` coloured (each shaded), the rest ``base``;
    blended to the mean where a pixel covers several cells."""
    f1, _, cell = cells(rng, ground, spacing)
    shade = rng.uniform(0.7, 1.1, _LATTICE * _LATTICE).astype(np.float32)[cell][..., None]
    is_chunk = ((rng.random(_LATTICE * _LATTICE) < share)[cell] & (f1 < 0.55))[..., None]
    near = np.where(is_chunk, chunk * shade, base)
    far = (1 - np.clip(spacing / ground.footprint - 0.5, 0, 1))[..., None]
    return near * (1 - far) + (share * 0.6 * chunk + (1 - share * 0.6) * base) * far


def _strip(w: int) -> Ground:
    """A one-row image-space grid of ``w`` columns (for profiles along the horizon)."""
    x = np.arange(w, dtype=np.float32)[None, :]
    return Ground(x, np.zeros_like(x), np.zeros(x.shape, bool), np.zeros_like(x), np.zeros_like(x))


def _write_png(path: Path, pixels: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=4)
            f.write("\n")
