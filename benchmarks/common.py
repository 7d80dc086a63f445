"""Shared pieces of the benchmark scripts: cached synthetic data sets and printing."""

from __future__ import annotations

import json
from pathlib import Path

from seaice_mlflow.core.checkpoint import BEST, load_checkpoint
from seaice_mlflow.core.io import atomic_path
from seaice_mlflow.core.metrics import ScoreBoard, Scores
from seaice_mlflow.tasks.autoice.baseline import per_pixel_baseline
from seaice_mlflow.tasks.autoice.charts import AUTOICE, CHART_NAMES
from seaice_mlflow.tasks.autoice.files.naming import find_scene_files
from seaice_mlflow.tasks.autoice.files.reader import read_scene
from seaice_mlflow.tasks.autoice.pyfunc import SeaIceChartModel
from seaice_mlflow.tasks.autoice.recipe import load_network
from seaice_mlflow.tasks.autoice.synthetic import synthesize
from seaice_mlflow.tasks.autoice.training import ChartTraining

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench"


def synthetic_split(name: str, n_scenes: int, size: tuple[int, int], split: str, seed: int, fmt: str = "ready") -> Path:
    """A folder of synthetic scenes, generated once and reused by later runs."""
    out = CACHE / f"{name}-{split}-{fmt}-{n_scenes}x{size[0]}x{size[1]}-s{seed}"
    done = out / ".complete"
    if not done.exists():
        synthesize(out, n_scenes=n_scenes, size=size, split=split, fmt=fmt, seed=seed)
        done.write_text(json.dumps({"n_scenes": n_scenes, "size": size, "split": split, "seed": seed}))
    return out


def quality_data(
    n_train: int = 8, n_test: int = 4, size: tuple[int, int] = (1000, 1000), seed: int = 2026
) -> tuple[Path, Path]:
    """The quality benchmark's data: training scenes and held-out test scenes (with references)."""
    train = synthetic_split("quality", n_train, size, "train", seed)
    test = synthetic_split("quality", n_test, size, "test", seed + 1000)
    return train, test


def cached_baseline(train_dir: Path, test_dir: Path, pixels: int = 300_000, seed: int = 0) -> Scores:
    """The per-pixel baseline's test scores, remembered in .bench/ for the same data folders
    (paths under .bench/), training pixels and seed."""
    folders = ["-".join(Path(d).absolute().relative_to(CACHE).parts) for d in (train_dir, test_dir)]
    cache = CACHE / f"baseline-{folders[0]}-{folders[1]}-{pixels}-seed{seed}.json"
    if cache.is_file():
        data = json.loads(cache.read_text())
        return Scores(AUTOICE, data["combined"], {c: data[c] for c in CHART_NAMES}, data["pixels"])
    scores = per_pixel_baseline(find_scene_files(train_dir), find_scene_files(test_dir), pixels, seed)
    with atomic_path(cache) as tmp:
        tmp.write_text(json.dumps(scores.as_dict()))
    return scores


def print_scores(label: str, scores) -> None:
    """One line: combined, SIC, SOD, FLOE of a :class:`Scores`."""
    c = scores.charts
    print(
        f"{label:<34} combined {scores.combined:7.3f}   SIC {c['SIC']:7.3f}   "
        f"SOD {c['SOD']:7.3f}   FLOE {c['FLOE']:7.3f}"
    )


def score_best(trainer: ChartTraining, test_dir: Path, device: str = "auto") -> Scores:
    """Official scores of the trainer's best checkpoint (the model training logs) on the test
    scenes at 80 m, as ``seaice evaluate`` scores it."""
    network = load_network(trainer.recipe, load_checkpoint(Path(trainer.config.out) / BEST)["model"])
    model = SeaIceChartModel().setup(trainer.recipe, network, device)
    board = ScoreBoard(AUTOICE)
    for path in find_scene_files(test_dir):
        scene = read_scene(path)
        board.add(scene.scene_id, scene.charts, model.predict_scene(scene).charts)
    return board.pooled()


def print_epoch(report) -> None:
    """One line per training epoch (a :class:`~seaice_mlflow.core.trainer.EpochReport`)."""
    m = report.metrics
    print(
        f"  epoch {report.epoch + 1:3d}  loss {m['train_loss']:.4f}  val {m.get('val_combined', float('nan')):7.3f}  "
        f"{m['patches_per_s']:.1f} patches/s",
        flush=True,
    )
