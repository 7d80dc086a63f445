"""Synthetic AI4Arctic scenes in the real file layouts (``seaice synth``).

A scene is built once (identity, swath, tie points, land, chart polygons, fields), then drawn
strip by strip at 40 m, so memory stays bounded from 64 px test scenes to 5000+ px benchmark
scenes. The same scene (seed, index) written as ``ready`` and as ``raw`` reads back identically:
the ready writer reduces the 40 m strips with the reader's own :func:`raw.reduce_strip`, and the
raw file carries the egg codes that the reader decodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.tasks.autoice.files.metadata import approximate_season
from seaice_mlflow.tasks.autoice.files.raw import reduce_strip
from seaice_mlflow.tasks.autoice.files.variables import COARSE_FACTOR
from seaice_mlflow.tasks.autoice.synthetic import DEFAULT_SIZE, FORMATS, MIN_SIZE, SPLITS
from seaice_mlflow.tasks.autoice.synthetic.fields import SmoothField
from seaice_mlflow.tasks.autoice.synthetic.layout import (
    STRIP_ROWS,
    make_chart,
    make_identity,
    make_land,
    make_swath,
    make_tie_points,
)
from seaice_mlflow.tasks.autoice.synthetic.radar import RadarModel, upsample2
from seaice_mlflow.tasks.autoice.synthetic.radiometer import brightness_temperatures, era5_fields
from seaice_mlflow.tasks.autoice.synthetic.writer import RawFile, ReadyFile, ReferenceFile, polygon_code_rows
from seaice_mlflow.tasks.autoice.workers import process_pool


@dataclass
class Strip:
    """One strip of a synthetic scene: 40 m raw variables and 80 m cover fractions."""

    row: int  # first 80 m row
    hh_db: np.ndarray  # (2h, 2W) float32, NaN outside the swath
    hv_db: np.ndarray
    polygon: np.ndarray  # (2h, 2W) float32 polygon id, NaN on land
    charts: dict[str, np.ndarray]  # (2h, 2W) int16 classes, -1 on land
    distance: np.ndarray  # (2h, 2W) float32 zone id
    subswath: np.ndarray  # (2h, 2W) uint8
    incidence: np.ndarray  # (2h, 2W) float64 degrees
    ice: np.ndarray  # (h, W) ice fraction
    old: np.ndarray  # (h, W) old-ice fraction


def scene_rngs(seed: int, index: int) -> list[np.random.Generator]:
    """The independent random streams of scene ``index`` of ``seed`` (identity first)."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence([seed, index]).spawn(8)]


class SyntheticScene:
    """One synthetic scene, deterministic for (seed, index); ``shape`` is the 80 m grid."""

    def __init__(self, seed: int, index: int, shape: tuple[int, int]):
        self.seed, self.index, self.shape = seed, index, (int(shape[0]), int(shape[1]))
        self.shape40 = (2 * self.shape[0], 2 * self.shape[1])
        self.coarse_shape = (self.shape[0] // COARSE_FACTOR, self.shape[1] // COARSE_FACTOR)
        rng = scene_rngs(seed, index)
        self.identity = make_identity(rng[0])
        self.swath = make_swath(rng[1], self.shape40)
        self.tie = make_tie_points(rng[1], self.shape40, self.swath, self.identity.provider)
        self.land, self.zones = make_land(rng[2], self.shape)
        self.chart = make_chart(rng[3], self.shape, self.land, self.zones)
        self.wind = (SmoothField(rng[4], self.shape, 400.0), SmoothField(rng[4], self.shape, 400.0))
        self.wind_mean = tuple(rng[4].normal([0.7, 0.6], 3.0))
        # melt or freeze by the rule the metadata reader applies without a table (wet ice in melt)
        self.season = approximate_season(self.identity.time, float(np.mean(self.tie.latitude)))
        self.radar = RadarModel(
            rng[5],
            self.shape,
            self.chart,
            self.land,
            self.swath,
            self.tie,
            self.wind,
            self.wind_mean,
            (seed, index),
            melt=self.season == "melt",
        )
        self._code_rng, self._coarse_rng = rng[6], rng[7]
        self.classes = self.chart.classes()
        self.poly_ids = np.array([p.poly_id for p in self.chart.polygons], dtype=np.float32)

    def strips(self) -> Iterator[Strip]:
        h, w = self.shape
        for row in range(0, h, STRIP_ROWS):
            height = min(STRIP_ROWS, h - row)
            hh, hv, ice, old = self.radar.strip(row, height)
            index = self.chart.index[row : row + height]
            on_land = index < 0
            safe = np.where(on_land, 0, index)
            rows40, cols40 = np.arange(2 * row, 2 * (row + height)), np.arange(2 * w)
            yield Strip(
                row=row,
                hh_db=hh,
                hv_db=hv,
                polygon=upsample2(np.where(on_land, np.nan, self.poly_ids[safe]).astype(np.float32)),
                charts={c: upsample2(np.where(on_land, -1, v[safe]).astype(np.int16)) for c, v in self.classes.items()},
                distance=upsample2(self.zones[row : row + height].astype(np.float32)),
                subswath=self.swath.subswath(rows40, cols40),
                incidence=self.tie.incidence_at(rows40, cols40),
                ice=ice,
                old=old,
            )

    def coarse_variables(self, ice: np.ndarray, old: np.ndarray) -> dict[str, np.ndarray]:
        """AMSR2 and ERA5 (physical units, float64) from the 2 km ice and old-ice fractions."""
        land = cell_mean(self.land.astype(np.float32), self.coarse_shape)
        era5 = era5_fields(
            self._coarse_rng, self.coarse_shape, self.identity.time.month, ice, self.wind, self.wind_mean
        )
        return {**brightness_temperatures(self._coarse_rng, ice, old, land, era5), **era5}

    def write(self, directory: Path, split: str, fmt: str) -> list[Path]:
        """Write the scene's files; returns their paths (scene file first)."""
        directory.mkdir(parents=True, exist_ok=True)
        ice = np.zeros(self.coarse_shape)
        old = np.zeros(self.coarse_shape)
        with ExitStack() as stack:
            reference = None
            if split == "test":
                reference = stack.enter_context(ReferenceFile(directory, self.identity, self.shape))
            if fmt == "raw":
                codes = polygon_code_rows(self._code_rng, self.chart.polygons) if split == "train" else None
                scene = stack.enter_context(
                    RawFile(directory, self.identity, self.shape40, self.coarse_shape, self.tie, codes)
                )
            else:
                scene = stack.enter_context(
                    ReadyFile(directory, self.identity, self.shape, self.coarse_shape, self.tie, split == "train")
                )
            for strip in self.strips():
                accumulate_cells(ice, strip.row, strip.ice)
                accumulate_cells(old, strip.row, strip.old)
                if fmt == "raw":
                    values = {
                        "nersc_sar_primary": strip.hh_db,
                        "nersc_sar_secondary": strip.hv_db,
                        "distance_map": strip.distance,
                        "swath_segmentation": strip.subswath,
                    }
                    if split == "train":
                        values["polygon_icechart"] = strip.polygon
                    scene.write_strip(2 * strip.row, values)
                if fmt == "ready" or reference is not None:
                    sar, charts = reduce_strip(strip.hh_db, strip.hv_db, strip.incidence, strip.distance, strip.charts)
                    if fmt == "ready":
                        scene.write_strip(
                            strip.row,
                            sar,
                            None if reference else charts,
                            {"nersc_sar_primary": strip.hh_db, "nersc_sar_secondary": strip.hv_db},
                        )
                    if reference is not None:
                        reference.write_strip(strip.row, charts)
            n = COARSE_FACTOR**2
            scene.finish(self.coarse_variables(ice / n, old / n))
        return [scene.path] + ([reference.path] if reference is not None else [])


def cell_mean(values: np.ndarray, coarse_shape: tuple[int, int]) -> np.ndarray:
    """Mean of each 2 km cell (25 x 25 pixels) of an 80 m field."""
    ch, cw = coarse_shape
    block = values[: ch * COARSE_FACTOR, : cw * COARSE_FACTOR]
    return block.reshape(ch, COARSE_FACTOR, cw, COARSE_FACTOR).mean(axis=(1, 3))


def accumulate_cells(total: np.ndarray, row: int, values: np.ndarray) -> None:
    """Add a strip's pixel sums to the 2 km cells it covers (strips start on cell boundaries)."""
    ch, cw = total.shape
    first = row // COARSE_FACTOR
    n = min(values.shape[0] // COARSE_FACTOR, ch - first)
    if n <= 0:
        return
    block = values[: n * COARSE_FACTOR, : cw * COARSE_FACTOR]
    total[first : first + n] += block.reshape(n, COARSE_FACTOR, cw, COARSE_FACTOR).sum(axis=(1, 3))


def synthesize(
    out_dir: str | Path,
    n_scenes: int = 1,
    size: tuple[int, int] = DEFAULT_SIZE,
    split: str = "train",
    fmt: str = "ready",
    seed: int = 0,
    first_index: int = 0,
    on_scene: Callable[[list[Path]], None] | None = None,
    workers: int = 1,
) -> list[Path]:
    """Write ``n_scenes`` synthetic scenes to ``out_dir`` with ``workers`` processes; returns all
    files written, scene by scene in index order (``on_scene`` is called with each scene's files).

    Scene ``first_index + i`` of a seed is the same whatever ``n_scenes`` or ``workers`` is.
    """
    if split not in SPLITS:
        raise ParameterError("split", f"{split!r} is not one of {', '.join(SPLITS)}")
    if fmt not in FORMATS:
        raise ParameterError("format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    if n_scenes < 1:
        raise ParameterError("scenes", f"must be at least 1, got {n_scenes}")
    if workers < 1:
        raise ParameterError("workers", f"must be at least 1, got {workers}")
    if min(size) < MIN_SIZE:
        raise ParameterError(
            "size",
            f"{size[0]}x{size[1]} is too small; scenes need at least {MIN_SIZE}x{MIN_SIZE} pixels (two 2 km cells)",
        )
    jobs = [(seed, index, size, Path(out_dir), split, fmt) for index in scene_indices(seed, first_index, n_scenes)]
    written: list[Path] = []
    with ExitStack() as stack:
        if workers == 1 or n_scenes == 1:
            results = (write_scene(*job) for job in jobs)
        else:
            results = stack.enter_context(process_pool(min(workers, n_scenes))).map(write_scene, *zip(*jobs))
        for paths in results:
            written.extend(paths)
            if on_scene is not None:
                on_scene(paths)
    return written


def scene_indices(seed: int, first_index: int, n_scenes: int) -> list[int]:
    """Indices of ``n_scenes`` scenes from ``first_index`` on with distinct file names (a draw
    with the same second and provider as an earlier one is skipped)."""
    keys: set[str] = set()
    indices: list[int] = []
    index = first_index
    while len(indices) < n_scenes:
        key = make_identity(scene_rngs(seed, index)[0]).key
        if key not in keys:
            keys.add(key)
            indices.append(index)
        index += 1
    return indices


def write_scene(seed: int, index: int, size: tuple[int, int], out_dir: Path, split: str, fmt: str) -> list[Path]:
    """Make scene ``index`` of ``seed`` and write its files (a worker process's job)."""
    return SyntheticScene(seed, index, size).write(out_dir, split, fmt)
