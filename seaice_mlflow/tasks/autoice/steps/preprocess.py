"""A preprocess run in MLflow: scenes -> the chunked training store, with the store's manifest,
normalisation, class histograms per split and the scenes as a dataset input.

Options, ``out`` and the split sizes are checked before the run starts
(:func:`~seaice_mlflow.tasks.autoice.conversion.plan_preprocess`); a bad scene is reported and skipped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
from tqdm import tqdm

from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.core.progress import progress_bar
from seaice_mlflow.tasks.autoice import plots
from seaice_mlflow.tasks.autoice.config import PREPROCESS, PreprocessDefaults
from seaice_mlflow.tasks.autoice.conversion import PreprocessResult, convert_scenes, plan_preprocess
from seaice_mlflow.tasks.autoice.files.variables import parse_variables
from seaice_mlflow.tasks.autoice.store import MANIFEST, NORMALISATION, Store
from seaice_mlflow.tracking.runs import log_scene_dataset, run_name, step_run


@dataclass
class PreprocessRun:
    run_id: str
    store: Path
    result: PreprocessResult

    @property
    def scenes(self) -> list[dict]:
        """The store's scene records (manifest)."""
        return self.result.manifest["scenes"]


def preprocess(
    data_dir: str | Path, options: PreprocessDefaults = PREPROCESS, echo: Callable[[str], None] = tqdm.write
) -> PreprocessRun:
    """Convert ``data_dir`` into the store ``options.out`` in the active (or a new) run ("preprocess").

    Shows a progress bar; ``echo`` gets a line per scene that fails (the bar stays intact).
    """
    data_dir = Path(data_dir)
    try:
        names = parse_variables(options.variables)
    except ValueError as err:
        raise ParameterError("variables", str(err)) from None
    plan = plan_preprocess(
        data_dir,
        options.out,
        downsample=options.downsample,
        variables=names,
        val_scenes=options.val_scenes,
        val_list=options.val_list or None,
        workers=options.workers,
        overwrite=options.overwrite,
        seed=options.seed,
    )
    store = Path(options.out).resolve()
    params = {"data_dir": str(data_dir.resolve()), **asdict(options), "out": str(store)}
    with step_run("preprocess", params, name=run_name("preprocess", data_dir.name, "into", store.name)) as run:
        started = time.perf_counter()
        with progress_bar(total=len(plan.files), desc="preprocess", unit="scene") as bar:

            def progress(status: str, info: dict) -> None:
                bar.update()
                if status == "failed":
                    echo(f"skipped {info['file']}: {info['problem']}")

            result = convert_scenes(plan, on_scene=progress)
        scenes = result.manifest["scenes"]
        mlflow.log_metrics(
            {
                "scenes": len(scenes),
                "scenes_processed": len(result.processed),
                "scenes_skipped": len(result.skipped),
                "scenes_failed": len(result.failed),
                "preprocess_seconds": time.perf_counter() - started,
            }
        )
        mlflow.set_tag("seaice.store", str(store))
        mlflow.set_tag("seaice.store_digest", Store(store).digest)
        mlflow.log_artifact(str(store / MANIFEST), "store")
        mlflow.log_artifact(str(store / NORMALISATION), "store")
        histograms = split_histograms(scenes)
        mlflow.log_figure(plots.class_histograms(histograms), "store/class_histograms.png")
        mlflow.log_text(json.dumps(histograms, indent=1), "store/class_histograms.json")
        log_scene_dataset(scenes, source=str(data_dir.resolve()), name=data_dir.name, context="preprocess")
        return PreprocessRun(run.info.run_id, store, result)


def split_histograms(scenes: list[dict]) -> dict[str, dict[str, list[int]]]:
    """Class counts summed over the scenes of each split."""
    out: dict[str, dict[str, list[int]]] = {}
    for scene in scenes:
        split = out.setdefault(scene["split"], {})
        for chart, counts in scene["histograms"].items():
            split[chart] = [a + b for a, b in zip(split.get(chart, [0] * len(counts)), counts)]
    return out
