"""Patch loading and preprocessing speed on two real-size synthetic scenes (5000 x 5200 px).

Prints, measured in one run:
* patches/s of the store's patch sampler (patch 256, batch 16, 2 workers, all 24 inputs, default
  augmentations) and of a naive loader that opens the netCDF scene and reads the patch for every
  sample (same DataLoader settings), and their ratio (targets: >= 150 patches/s, ratio >= 30);
  the sampler again with IceBench's patch filters (``--border-distance 10 --land exclude``);
* preprocess wall time (1 worker) against ``xarray.open_dataset(...).load()`` of the same scenes
  (target <= 1.5x);
* peak RSS of preprocessing one 5000 px scene in its own process (target <= 3 GiB).

    python benchmarks/bench_loader.py [--batches 40]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from torch.utils.data import DataLoader, Dataset

from common import CACHE, synthetic_split
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES
from seaice_mlflow.tasks.autoice.config import PREPROCESS
from seaice_mlflow.tasks.autoice.conversion import preprocess
from seaice_mlflow.tasks.autoice.files.naming import find_scene_files
from seaice_mlflow.tasks.autoice.files.variables import COARSE_FACTOR, COARSE_VARIABLES, SAR_VARIABLES, SCENE_VARIABLES
from seaice_mlflow.tasks.autoice.patches import PatchDataset, PatchLoader, PatchOptions
from seaice_mlflow.tasks.autoice.store import Store

PATCH, BATCH, WORKERS = 256, 16, 2


class NaivePatches(Dataset):
    """The usual way: open the scene file and read the patch, for every sample."""

    def __init__(self, files: list[Path], seed: int = 0):
        self.files, self.seed = files, seed
        with xr.open_dataset(files[0]) as ds:
            self.shape = ds.sizes["sar_lines"], ds.sizes["sar_samples"]

    def __len__(self) -> int:
        return 1 << 30

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        path = self.files[int(rng.integers(len(self.files)))]
        r, c = (int(rng.integers(0, n - PATCH)) for n in self.shape)
        with xr.open_dataset(path, engine="netcdf4") as ds:
            window = {"sar_lines": slice(r, r + PATCH), "sar_samples": slice(c, c + PATCH)}
            fine = [ds[v].isel(window).values for v in SAR_VARIABLES]
            cells = {
                "2km_grid_lines": slice(r // COARSE_FACTOR, (r + PATCH) // COARSE_FACTOR + 1),
                "2km_grid_samples": slice(c // COARSE_FACTOR, (c + PATCH) // COARSE_FACTOR + 1),
            }
            rows = np.arange(r, r + PATCH) // COARSE_FACTOR - r // COARSE_FACTOR
            cols = np.arange(c, c + PATCH) // COARSE_FACTOR - c // COARSE_FACTOR
            coarse = [ds[v].isel(cells).values[np.ix_(rows, cols)] for v in COARSE_VARIABLES]
            sample = {"image": torch.from_numpy(np.stack(fine + coarse).astype(np.float32))}
            sample.update({k: torch.from_numpy(ds[k].isel(window).values) for k in CHART_NAMES})
        return sample


def patches_per_second(loader, batches: int) -> float:
    """Throughput after the first batch (worker start-up excluded)."""
    iterator = iter(loader)
    next(iterator)
    start, n = time.perf_counter(), 0
    for _, batch in zip(range(batches), iterator):
        n += batch["image"].shape[0]
    return n / (time.perf_counter() - start)


def preprocess_peak_rss(scene_dir: Path, out: Path) -> float:
    """Peak RSS (GiB) of a separate process preprocessing the one scene in ``scene_dir``: its own
    VmHWM (getrusage's maxrss would also count the pages of this big process at fork time)."""
    code = (
        "from seaice_mlflow.tasks.autoice.conversion import preprocess; "
        "from seaice_mlflow.tasks.autoice.files.variables import SCENE_VARIABLES; "
        f"preprocess({str(scene_dir)!r}, {str(out)!r}, downsample=1, variables=SCENE_VARIABLES, "
        "val_scenes=0, val_list=None, workers=1, overwrite=True, seed=0); "
        "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')))"
    )
    out_text = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return int(out_text.split()[-2]) / 2**20  # "VmHWM:  123 kB"


def time_preprocess(data: Path, store: Path, workers: int) -> float:
    shutil.rmtree(store, ignore_errors=True)
    start = time.perf_counter()
    preprocess(
        data,
        store,
        downsample=1,
        variables=SCENE_VARIABLES,
        val_scenes=0,
        val_list=None,
        workers=workers,
        overwrite=True,
        seed=0,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="batches timed per loader")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = synthetic_split("loader", 2, (5000, 5200), "train", seed=77)
    files = find_scene_files(data)
    print(f"data: {len(files)} scenes of 5000 x 5200 px in {data}")

    for path in files:  # same page cache for every timing below
        path.read_bytes()
    start = time.perf_counter()
    for path in files:
        with xr.open_dataset(path) as ds:
            ds.load()
    load_s = time.perf_counter() - start
    store = CACHE / "loader-store"
    one = time_preprocess(data, store, workers=1)
    default = time_preprocess(data, store, workers=PREPROCESS.workers)
    print(f"xarray open_dataset().load()     {load_s:7.1f} s for the {len(files)} scenes")
    print(
        f"preprocess, {PREPROCESS.workers} workers (default)   {default:7.1f} s   ratio {default / load_s:4.2f}x "
        "(target <= 1.5x)"
    )
    print(f"preprocess, 1 worker             {one:7.1f} s   ratio {one / load_s:4.2f}x")

    single = CACHE / "loader-one-scene"
    single.mkdir(exist_ok=True)
    if not (single / files[0].name).exists():
        (single / files[0].name).symlink_to(files[0])
    rss = preprocess_peak_rss(single, CACHE / "loader-store-one")
    print(f"preprocess peak RSS, one scene   {rss:7.2f} GiB (target <= 3 GiB)")

    options = PatchOptions(PATCH, SCENE_VARIABLES)
    loader = PatchLoader(PatchDataset(Store(store), options), BATCH, workers=WORKERS)
    ours = patches_per_second(loader.epoch(0, args.batches + 1), args.batches)
    naive_batches = max(3, args.batches // 10)
    naive = patches_per_second(DataLoader(NaivePatches(files), batch_size=BATCH, num_workers=WORKERS), naive_batches)
    print(f"store sampler                    {ours:7.1f} patches/s (target >= 150)")
    filtered = PatchOptions(PATCH, SCENE_VARIABLES, border_distance=10, land="exclude")
    loader = PatchLoader(PatchDataset(Store(store), filtered), BATCH, workers=WORKERS)
    icebench = patches_per_second(loader.epoch(0, args.batches + 1), args.batches)
    print(f"  with border 10, land exclude   {icebench:7.1f} patches/s")
    print(f"naive netCDF loader              {naive:7.1f} patches/s")
    print(f"ratio                            {ours / naive:7.1f}x (target >= 30)")


if __name__ == "__main__":
    main()
