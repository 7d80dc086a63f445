"""Attribution for AutoICE charts: input groups, patches from scene files, Grad-CAM products.

The generic parts are :mod:`seaice_mlflow.core.attribution` (Captum methods, permutation
importance) and :mod:`seaice_mlflow.core.gradcam`; this module says what the scenes' inputs and
charts are:

* **groups** of input variables (``--groups default``): SAR HH/HV, incidence angle, distance
  map, AMSR2 by frequency (both polarisations), ERA5 wind, temperature (2 m and skin), water
  vapour and cloud liquid water, the month and the position encodings; ``none`` (variables
  only) or a JSON file ``{"group": ["variable", ...]}``. Only groups with variables the model
  reads are kept; a file naming a variable the model does not read is refused.
* **patches** of ``size`` x ``size`` pixels of the model's working grid, centred (clipped to the
  scene) on pixels where every explained chart has a class, drawn with ``seed`` without
  replacement among the distinct windows (the same scenes, seed and options give the same patches),
  spread evenly over the scenes as far as each holds windows, never more than the scenes hold
  (:class:`PatchSample` says so); with the model's own inputs (its recipe: variables, order,
  downsampling). Only the windows are kept: :class:`PatchBatches` reads the patches a batch at a
  time, at most :data:`BATCH_BYTES` of inputs, so memory is bounded by a batch (8000 patches of
  128 px stacked at once are 15 GB).
* **Grad-CAM** products of a scene: ``<scene_id>_gradcam.nc`` with one float32 layer per chart
  and class on the scene's 80 m grid (``sar_lines``, ``sar_samples``) and a PNG per chart (each
  class's map over the HH quicklook).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from seaice_mlflow import __version__
from seaice_mlflow.core.attribution import METHODS, Feature, Method, Patches
from seaice_mlflow.core.errors import ParameterError, SeaIceError
from seaice_mlflow.core.gradcam import CamTarget, scene_cams
from seaice_mlflow.core.io import add_variable, atomic_netcdf
from seaice_mlflow.core.task import TaskSpec
from seaice_mlflow.core.tiling import Window
from seaice_mlflow.tasks.autoice import plots
from seaice_mlflow.tasks.autoice.downsample import downsample_chart
from seaice_mlflow.tasks.autoice.files.variables import AMSR2_VARIABLES, SAR_DIMS
from seaice_mlflow.tasks.autoice.files.windowed import open_scene
from seaice_mlflow.tasks.autoice.recipe import Recipe
from seaice_mlflow.tasks.autoice.scene import Scene
from seaice_mlflow.tasks.autoice.sources import SceneTiles

#: AMSR2 frequencies, in the variables' order (``btemp_6_9h`` -> ``6_9``).
BANDS = tuple(dict.fromkeys(v.removeprefix("btemp_")[:-1] for v in AMSR2_VARIABLES))
DEFAULT_GROUPS: dict[str, tuple[str, ...]] = {
    "SAR HH/HV": ("nersc_sar_primary", "nersc_sar_secondary"),
    "incidence angle": ("sar_incidenceangle",),
    "distance map": ("distance_map",),
    **{
        f"AMSR2 {band.replace('_', '.')} GHz": tuple(v for v in AMSR2_VARIABLES if v.startswith(f"btemp_{band}"))
        for band in BANDS
    },  # fmt: skip
    "ERA5 wind": ("u10m_rotated", "v10m_rotated"),
    "ERA5 temperature": ("t2m", "skt"),
    "ERA5 water vapour": ("tcwv",),
    "ERA5 cloud liquid water": ("tclw",),
    "month": ("month",),
    "position": ("sin_lat", "cos_lat", "sin_lon", "cos_lon"),
}
#: A Grad-CAM quicklook's longest side in pixels.
QUICKLOOK_PIXELS = 800
#: Patch inputs read and attributed together at most (their baselines and attributions take as much
#: again): 67 patches of 128 px with 29 channels, 16 of 256 px.
BATCH_BYTES = 128 * 2**20


def parse_methods(text: str) -> list[Method]:
    """``--methods``: a comma list of :data:`~seaice_mlflow.core.attribution.METHODS`, each once."""
    methods = list(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    wrong = [m for m in methods if m not in METHODS]
    if wrong or not methods:
        raise ParameterError("methods", f"{wrong[0] if wrong else text!r}: give a comma list of {', '.join(METHODS)}")
    return methods


def parse_charts(text: str, task: TaskSpec) -> list[str]:
    """``--charts``: heads of the model's task (empty: all of them)."""
    charts = list(dict.fromkeys(c.strip() for c in text.split(",") if c.strip())) or list(task.names)
    wrong = [c for c in charts if c not in task.names]
    if wrong:
        raise ParameterError("charts", f"{wrong[0]!r} is not a chart of the model ({', '.join(task.names)})")
    return charts


def parse_classes(text: str, task: TaskSpec, charts: Sequence[str]) -> dict[str, list[int]] | None:
    """``--classes``: ``all`` (None: every class present among the patches), ``none`` or
    ``CHART=A|B,...`` with class indices or names (``SOD=3|old ice``)."""
    text = text.strip()
    if text == "all":
        return None
    if text in ("", "none"):
        return {}
    chosen: dict[str, list[int]] = {}
    for term in (t.strip() for t in text.split(",") if t.strip()):
        chart, sep, values = (p.strip() for p in term.partition("="))
        if not sep or chart not in charts:
            raise ParameterError("classes", f"{term!r}: write CHART=A|B with a chart among {', '.join(charts)}")
        head = task.head(chart)
        names = [n.lower() for n in head.class_names]
        for value in (v.strip() for v in values.split("|")):
            index = int(value) if value.isdigit() else names.index(value.lower()) if value.lower() in names else -1
            if not 0 <= index < head.n_classes:
                listed = ", ".join(f"{i} {n}" for i, n in enumerate(head.class_names))
                raise ParameterError("classes", f"{chart} has no class {value!r} (its classes: {listed})")
            chosen.setdefault(chart, []).append(index)
    return chosen


def read_group_file(path: Path) -> dict[str, tuple[str, ...]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ParameterError("groups", f"{path} cannot be read as JSON ({err})") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) and v for v in data.values()):
        raise ParameterError("groups", f'{path}: give {{"group name": ["variable", ...], ...}}')
    return {str(name): tuple(map(str, names)) for name, names in data.items()}


def features_of(groups: str, variables: Sequence[str]) -> list[Feature]:
    """Every input variable, then the groups of ``--groups`` (``default``, ``none`` or a JSON file)."""
    index = {name: i for i, name in enumerate(variables)}
    features = [Feature(name, (i,), "variable") for name, i in index.items()]
    if groups == "none":
        return features
    if groups == "default":
        chosen = {name: tuple(v for v in members if v in index) for name, members in DEFAULT_GROUPS.items()}
        chosen = {name: members for name, members in chosen.items() if members}
    else:
        path = Path(groups)
        if not path.is_file():
            raise ParameterError("groups", f"{groups}: give default, none or a JSON file of groups")
        chosen = read_group_file(path)
        for name, members in chosen.items():
            unread = [v for v in members if v not in index]
            if unread:
                raise ParameterError("groups", f"{path}: group {name!r} names {unread[0]!r}, which the model does "
                                     f"not read (it reads {', '.join(variables)})")  # fmt: skip
    return features + [Feature(name, tuple(index[v] for v in members), "group") for name, members in chosen.items()]


@dataclass(frozen=True)
class PatchRecord:
    """Where a sampled patch lies: its scene and its window on the model's working grid."""

    scene_id: str
    file: str
    row: int
    col: int
    size: int


def working_charts(scene: Scene, charts: Sequence[str], downsample: int) -> dict[str, np.ndarray]:
    return {c: downsample_chart(scene.charts[c], downsample) for c in charts}


def scene_windows(scene: Scene, recipe: Recipe, charts: Sequence[str], size: int) -> np.ndarray:
    """The distinct top-left corners (row * width + col on the working grid) of the ``size`` windows
    centred, clipped to the scene, on pixels where every chart of ``charts`` has a class."""
    grid = working_charts(scene, charts, recipe.downsample)
    height, width = next(iter(grid.values())).shape
    if height < size or width < size:
        return np.empty(0, np.int64)
    rows, cols = np.nonzero(np.logical_and.reduce([g != recipe.task.ignore_index for g in grid.values()]))
    rows = np.clip(rows - size // 2, 0, height - size)
    cols = np.clip(cols - size // 2, 0, width - size)
    return np.unique(rows.astype(np.int64) * width + cols)


def spread(wanted: int, held: Sequence[int]) -> list[int]:
    """``wanted`` patches spread as evenly as possible over scenes holding ``held`` windows each,
    never more than a scene holds: the fewest-held first, each taking its share of what is left."""
    counts = [0] * len(held)
    left = wanted
    for rank, i in enumerate(sorted(range(len(held)), key=lambda i: held[i])):
        counts[i] = min(held[i], -(-left // (len(held) - rank)))
        left -= counts[i]
    return counts


@dataclass(frozen=True)
class PatchSample:
    """The patches drawn (their windows only), each chart's classes present among their reference
    pixels, and a note when fewer were drawn than asked for."""

    records: list[PatchRecord]
    classes: dict[str, list[int]]
    note: str = ""
    files: dict[str, Path] = field(default_factory=dict)  # file name -> path


def sample_patches(
    files: Sequence[Path], recipe: Recipe, charts: Sequence[str], n_patches: int, size: int, seed: int
) -> PatchSample:
    """``n_patches`` distinct windows spread over the scenes with reference charts (module
    docstring): the scenes are opened once to count their windows, once more to draw them."""
    held = {}
    for path in files:
        with open_scene(path) as scene:
            if scene.has_charts:
                held[path] = len(scene_windows(scene, recipe, charts, size))
    if not held:
        raise ParameterError("data_dir", "no scene has reference charts; give scenes with charts (ready-to-train "
                             "files, or test files beside their _prep_reference.nc)")  # fmt: skip
    if not sum(held.values()):
        raise ParameterError("patch_size", f"no scene of {len(held)} with charts holds a {size} px patch of "
                             f"valid charts at x{recipe.downsample}; give a smaller --patch-size")  # fmt: skip
    rng = np.random.default_rng(seed)
    records, present = [], {c: set() for c in charts}
    for path, take in zip(held, spread(n_patches, list(held.values()))):
        if not take:
            continue
        with open_scene(path) as scene:
            windows = scene_windows(scene, recipe, charts, size)
            grid = working_charts(scene, charts, recipe.downsample)
            width = next(iter(grid.values())).shape[1]
            for corner in rng.choice(windows, size=take, replace=False):
                window = Window(int(corner // width), int(corner % width), size, size)
                for c in charts:
                    present[c].update(np.unique(grid[c][window.slices]).tolist())
                records.append(PatchRecord(scene.scene_id, path.name, window.row, window.col, size))
    note = ""
    if len(records) < n_patches:
        note = (f"{n_patches} patches asked for, but the {len(held)} scene(s) with charts hold {len(records)} "
                f"distinct {size} px windows at x{recipe.downsample}: attributing those {len(records)}")  # fmt: skip
    classes = {c: sorted(int(v) for v in values if v != recipe.task.ignore_index) for c, values in present.items()}
    return PatchSample(records, classes, note, {p.name: p for p in held})


class PatchBatches:
    """The patches of a sample read from their scenes a batch at a time, each scene opened once per
    pass; iterable again (once per attribution method), ``len`` batches of at most ``batch`` patches."""

    def __init__(
        self, sample: PatchSample, recipe: Recipe, charts: Sequence[str], batch: int | None = None,
        device: torch.device | str = "cpu",
    ):  # fmt: skip
        self.sample, self.recipe, self.charts, self.device = sample, recipe, tuple(charts), device
        size = sample.records[0].size if sample.records else 1
        self.batch = batch or max(1, BATCH_BYTES // (4 * len(recipe.variables) * size * size))

    def __len__(self) -> int:
        return -(-len(self.sample.records) // self.batch)

    def __iter__(self) -> Iterator[Patches]:
        inputs, references, offset = [], {c: [] for c in self.charts}, 0
        for file, records in itertools.groupby(self.sample.records, key=lambda r: r.file):
            with open_scene(self.sample.files[file]) as scene:
                tiles = SceneTiles(scene, self.recipe.variables, self.recipe.downsample)
                grid = working_charts(scene, self.charts, self.recipe.downsample)
                for record in records:
                    window = Window(record.row, record.col, record.size, record.size)
                    inputs.append(tiles.read(window))
                    for c in self.charts:
                        references[c].append(grid[c][window.slices])
                    if len(inputs) == self.batch:
                        yield self.patches(inputs, references, offset)
                        offset += len(inputs)
                        inputs, references = [], {c: [] for c in self.charts}
        if inputs:
            yield self.patches(inputs, references, offset)

    def patches(self, inputs: list[np.ndarray], references: dict[str, list[np.ndarray]], offset: int) -> Patches:
        return Patches(torch.from_numpy(np.stack(inputs)).to(self.device),
                       {c: torch.from_numpy(np.stack(v).astype(np.int64)).to(self.device)
                        for c, v in references.items()}, offset)  # fmt: skip


class CamProduct:
    """Receives a scene's Grad-CAM tiles: writes them on the 80 m grid into the open netCDF file
    and keeps a decimated copy (and the HH under it) for the quicklooks."""

    def __init__(self, ds, scene: Scene, targets: Sequence[CamTarget], downsample: int, step: int):
        self.ds, self.scene, self.targets, self.k, self.step = ds, scene, targets, downsample, step
        lines, samples = scene.full_shape
        self.shape = (-(-lines // downsample), -(-samples // downsample))
        small = (-(-self.shape[0] // step), -(-self.shape[1] // step))
        self.maps = np.zeros((len(targets), *small), np.float32)
        self.hh = np.zeros(small, np.float32)
        self.variables = [
            add_variable(ds, t.name, "f4", SAR_DIMS, chunks=(256, 256),
                         attrs={"long_name": f"Grad-CAM of {t.head.name} {t.label}", "units": "1",
                                "chart": t.head.name, "class_index": -1 if t.index is None else t.index,
                                "class_name": t.label})
            for t in targets
        ]  # fmt: skip

    def __call__(self, window: Window, maps: np.ndarray) -> None:
        k, (lines, samples) = self.k, self.scene.full_shape
        fine = Window(window.row * k, window.col * k, min(window.height * k, lines - window.row * k),
                      min(window.width * k, samples - window.col * k))  # fmt: skip
        for variable, cam in zip(self.variables, maps):
            variable[fine.slices] = np.repeat(np.repeat(cam, k, 0), k, 1)[: fine.height, : fine.width]
        rows = np.arange(window.row, window.row + window.height)
        cols = np.arange(window.col, window.col + window.width)
        keep_r, keep_c = rows % self.step == 0, cols % self.step == 0
        small = np.ix_(rows[keep_r] // self.step, cols[keep_c] // self.step)
        self.maps[(slice(None), *small)] = maps[:, keep_r][:, :, keep_c]
        centres = self.scene.read_sar(["nersc_sar_primary"], fine)["nersc_sar_primary"][k // 2 :: k, k // 2 :: k]
        hh = np.zeros((window.height, window.width), np.float32)  # a last block without a centre pixel: no SAR
        hh[: centres.shape[0], : centres.shape[1]] = centres
        self.hh[small] = hh[keep_r][:, keep_c]


def write_gradcam(
    scene: Scene, network: torch.nn.Module, recipe: Recipe, targets: Sequence[CamTarget], out: Path,
    tile: int, device: torch.device, provenance: Mapping[str, str],
) -> list[Path]:  # fmt: skip
    """``<scene_id>_gradcam.nc`` and one ``<scene_id>_gradcam_<chart>.png`` per chart in ``out``."""
    path = out / f"{scene.scene_id}_gradcam.nc"
    tiles = SceneTiles(scene, recipe.variables, recipe.downsample)
    step = max(1, int(np.ceil(max(tiles.shape) / QUICKLOOK_PIXELS)))
    try:
        with atomic_netcdf(path) as ds:
            for dim, length in zip(SAR_DIMS, scene.full_shape):
                ds.createDimension(dim, length)
            ds.setncatts({"title": f"Grad-CAM class-activation maps of {scene.scene_id}", "source": str(scene.source),
                          "layer": "input of each chart's head", "downsample": recipe.downsample,
                          "software": f"seaice-mlflow {__version__}",
                          "created": datetime.now(UTC).isoformat(timespec="seconds"), **provenance})  # fmt: skip
            product = CamProduct(ds, scene, targets, recipe.downsample, step)
            scene_cams(network, targets, tiles, product, tile, device)
    except RuntimeError as err:
        raise SeaIceError(f"Grad-CAM of {scene.scene_id} failed ({err}); try a smaller --tile") from err
    written = [path]
    for chart in dict.fromkeys(t.head.name for t in targets):
        index = [i for i, t in enumerate(targets) if t.head.name == chart]
        figure = plots.cam_overlays(product.hh, product.maps[index], [targets[i].label for i in index],
                                    f"{scene.scene_id}: Grad-CAM of {chart}")  # fmt: skip
        written.append(plots.save(figure, out / f"{scene.scene_id}_gradcam_{chart}.png"))
    return written
