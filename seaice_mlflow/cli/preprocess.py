"""``seaice preprocess``: scenes -> the chunked training store, tracked as an MLflow run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from tqdm import tqdm

from seaice_mlflow import plots
from seaice_mlflow.cli.options import options_from
from seaice_mlflow.config import PreprocessDefaults
from seaice_mlflow.data.preprocess import convert_scenes, plan_preprocess
from seaice_mlflow.data.store import MANIFEST, NORMALISATION, Store
from seaice_mlflow.data.variables import parse_variables
from seaice_mlflow.errors import ParameterError


@click.command("preprocess")
@click.option("--data-dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of AI4Arctic scenes: ready-to-train, raw, or test files with their references.")
@options_from(PreprocessDefaults)
def preprocess_command(data_dir: Path, out: str, downsample: int, variables: str, val_scenes: int,
                       val_list: str, workers: int, overwrite: bool, seed: int) -> None:
    """Convert a folder of scenes into the chunked training store (and log it to MLflow).

    Options, --out and the split sizes are checked before anything is converted or logged.
    Scenes already in the store with the same checksum and parameters are skipped; a bad scene
    is reported and skipped, the others land, and the exit status is 1.
    """
    try:
        names = parse_variables(variables)
    except ValueError as err:
        raise ParameterError("variables", str(err)) from None
    plan = plan_preprocess(data_dir, out, downsample=downsample, variables=names, val_scenes=val_scenes,
                           val_list=val_list or None, workers=workers, overwrite=overwrite, seed=seed)
    import mlflow

    from seaice_mlflow.tracking.runs import log_params_once, log_scene_dataset, start_run

    store = Path(out).resolve()
    params = {"data_dir": str(data_dir.resolve()), "out": str(store), "downsample": downsample,
              "variables": variables, "val_scenes": val_scenes, "val_list": val_list, "workers": workers,
              "overwrite": overwrite, "seed": seed}
    with start_run("preprocess", "preprocess"):
        log_params_once(params)
        started = time.perf_counter()
        with tqdm(total=len(plan.files), desc="preprocess", unit="scene", disable=None) as bar:
            def progress(status: str, info: dict) -> None:
                bar.update()
                if status == "failed":
                    tqdm.write(f"skipped {info['file']}: {info['problem']}")

            result = convert_scenes(plan, on_scene=progress)
        scenes = result.manifest["scenes"]
        mlflow.log_metrics({"scenes": len(scenes), "scenes_processed": len(result.processed),
                            "scenes_skipped": len(result.skipped), "scenes_failed": len(result.failed),
                            "preprocess_seconds": time.perf_counter() - started})
        mlflow.set_tag("seaice.store", str(store))
        mlflow.set_tag("seaice.store_digest", Store(store).digest)
        mlflow.log_artifact(str(store / MANIFEST), "store")
        mlflow.log_artifact(str(store / NORMALISATION), "store")
        histograms = split_histograms(scenes)
        mlflow.log_figure(plots.class_histograms(histograms), "store/class_histograms.png")
        mlflow.log_text(json.dumps(histograms, indent=1), "store/class_histograms.json")
        log_scene_dataset(scenes, source=str(data_dir.resolve()), name=data_dir.name, context="preprocess")
    click.echo(f"store {store}: {len(result.processed)} scene(s) converted, {len(result.skipped)} already "
               f"there, {len(result.failed)} failed; splits: " + ", ".join(
                   f"{s} {sum(r['split'] == s for r in scenes)}" for s in ("train", "val", "test")))
    for failure in result.failed:
        click.echo(f"FAILED {failure['file']}: {failure['problem']}", err=True)
    if result.failed:
        raise SystemExit(1)


def split_histograms(scenes: list[dict]) -> dict[str, dict[str, list[int]]]:
    """Class counts summed over the scenes of each split."""
    out: dict[str, dict[str, list[int]]] = {}
    for scene in scenes:
        split = out.setdefault(scene["split"], {})
        for chart, counts in scene["histograms"].items():
            split[chart] = [a + b for a, b in zip(split.get(chart, [0] * len(counts)), counts)]
    return out
