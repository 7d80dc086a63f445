"""``seaice preprocess``: a folder of AI4Arctic scenes -> the chunked training store.

Scenes are converted in parallel worker processes, each written atomically; a re-run skips
scenes already in the store with the same source checksum and parameters; a bad scene is
reported and skipped while the others land.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from seaice_mlflow import __version__
from seaice_mlflow.data.naming import find_scene_files, parse_scene_name
from seaice_mlflow.data.reader import read_scene
from seaice_mlflow.data.store import (
    NORMALISATION,
    SCENES,
    STORE_SCHEMA,
    file_sha256,
    read_record,
    write_manifest,
    write_scene,
)
from seaice_mlflow.data.variables import GLOBAL_MEAN_STD, SCENE_VARIABLES
from seaice_mlflow.data.workers import process_pool
from seaice_mlflow.errors import ParameterError, SeaIceError
from seaice_mlflow.io import remove


@dataclass(frozen=True)
class PreprocessOptions:
    """What decides the content of a scene group (a change means re-processing)."""

    downsample: int
    variables: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"schema_version": STORE_SCHEMA, "downsample": self.downsample, "variables": list(self.variables)}


@dataclass
class PreprocessResult:
    """What a preprocess run did."""

    store: Path
    manifest: dict
    processed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)  # {"file": ..., "problem": ...}


def check_options(downsample: int, variables: Sequence[str]) -> PreprocessOptions:
    """Validate the scene-level options with clear messages."""
    if int(downsample) != downsample or downsample < 1:
        raise ParameterError("downsample", f"must be a whole number >= 1, got {downsample}")
    unknown = [v for v in variables if v not in SCENE_VARIABLES]
    if unknown:
        raise ParameterError("variables", f"{', '.join(unknown)} not stored by preprocess; choose among "
                             f"{', '.join(SCENE_VARIABLES)} (time/position encodings are chosen at training)")
    if not variables:
        raise ParameterError("variables", "no variable given")
    return PreprocessOptions(int(downsample), tuple(dict.fromkeys(variables)))


def process_scene(path: Path, root: Path, options: PreprocessOptions, overwrite: bool) -> tuple[str, dict]:
    """Worker: convert one file. Returns ("processed"|"skipped", record) or ("failed", problem)."""
    try:
        key = parse_scene_name(path).key
        checksum = file_sha256(path)
        source = {"file": path.name, "sha256": checksum, "bytes": path.stat().st_size}
        done = read_record(root, key)
        if (not overwrite and done is not None and done.get("source", {}).get("sha256") == checksum
                and done.get("options") == options.as_dict()):
            return "skipped", done
        scene = read_scene(path)
        if not scene.has_charts:
            raise SeaIceError(f"{path.name}: has no charts (a test file without its _prep_reference.nc); "
                              "training needs charts, so put the reference next to it or leave the file out")
        record = write_scene(root, scene, options.variables, options.downsample,
                             {"source": source, "options": options.as_dict()})
        return "processed", record
    except SeaIceError as err:
        return "failed", {"file": path.name, "problem": str(err)}


def assign_splits(records: list[dict], val_scenes: int, val_list: Path | None, seed: int) -> None:
    """Test scenes stay "test"; of the others, ``val_list`` or ``val_scenes`` random ones become "val"."""
    trainable = [r["scene_id"] for r in records if r["kind"] != "test"]
    if val_list is not None:
        wanted = [line.strip() for line in val_list.read_text().splitlines() if line.strip()]
        unknown = sorted(set(wanted) - set(trainable))
        if unknown:
            raise ParameterError("val-list", f"{val_list}: scene(s) {', '.join(unknown)} are not training "
                                 "scenes of this data folder")
        chosen = set(wanted)
    else:
        if val_scenes and val_scenes >= len(trainable):
            raise ParameterError("val-scenes", f"asked for {val_scenes} validation scenes but the folder has only "
                                 f"{len(trainable)} training scenes; choose fewer")
        rng = np.random.default_rng(seed)
        chosen = set(rng.choice(sorted(trainable), size=val_scenes, replace=False)) if val_scenes else set()
    for record in records:
        record["split"] = "test" if record["kind"] == "test" else ("val" if record["scene_id"] in chosen else "train")


def preprocess(
    data_dir: str | Path,
    out: str | Path,
    *,
    downsample: int,
    variables: Sequence[str],
    val_scenes: int,
    val_list: str | Path | None,
    workers: int,
    overwrite: bool,
    seed: int,
    on_scene: Callable[[str, dict], None] | None = None,
) -> PreprocessResult:
    """Convert every scene of ``data_dir`` into the store ``out`` and write its manifest."""
    options = check_options(downsample, variables)
    if workers < 1:
        raise ParameterError("workers", f"must be at least 1, got {workers}")
    if val_scenes < 0:
        raise ParameterError("val-scenes", f"must be >= 0, got {val_scenes}")
    val_path = Path(val_list) if val_list else None
    if val_path is not None and not val_path.is_file():
        raise ParameterError("val-list", f"{val_path} does not exist; give a text file with one scene id per line")
    files = find_scene_files(data_dir)
    if not files:
        raise ParameterError("data-dir", f"{data_dir} holds no AI4Arctic scene files (*_prep.nc or raw *_icechart_*.nc)")
    root = Path(out)
    (root / SCENES).mkdir(parents=True, exist_ok=True)
    for stale in (root / SCENES).glob(".*.tmp"):  # left by a killed worker
        remove(stale)

    result = PreprocessResult(store=root, manifest={})
    records: list[dict] = []

    def collect(path: Path, status: str, info: dict) -> None:
        if status == "failed":
            result.failed.append(info)
        else:
            records.append(info)
            (result.processed if status == "processed" else result.skipped).append(info["scene_id"])
        if on_scene is not None:
            on_scene(status, info)

    if workers == 1:
        for path in files:
            collect(path, *process_scene(path, root, options, overwrite))
    else:
        with process_pool(min(workers, len(files))) as pool:
            futures = {pool.submit(process_scene, p, root, options, overwrite): p for p in files}
            for future in as_completed(futures):
                try:
                    collect(futures[future], *future.result())
                except BrokenProcessPool:
                    collect(futures[future], "failed", {"file": futures[future].name,
                                                        "problem": "the worker process died (out of memory?)"})

    records.sort(key=lambda r: r["scene_id"])
    assign_splits(records, val_scenes, val_path, seed)
    result.manifest = {
        "schema_version": STORE_SCHEMA,
        "software_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data_dir": str(Path(data_dir).resolve()),
        "parameters": {**options.as_dict(), "val_scenes": val_scenes,
                       "val_list": str(val_path) if val_path else None, "seed": seed},
        "normalisation": NORMALISATION,
        "scenes": records,
        "failed": sorted(result.failed, key=lambda f: f["file"]),
    }
    (root / NORMALISATION).write_text(json.dumps(
        {"source": "AI4Arctic misc/global_meanstd.npy (v2, starter pack HEAD)",
         "mean_std": {k: {"mean": m, "std": s} for k, (m, s) in GLOBAL_MEAN_STD.items()}}, indent=1))
    write_manifest(root, result.manifest)
    return result
