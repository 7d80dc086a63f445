"""The explain step: which inputs drive each chart of a logged model, as an MLflow run ("explain").

Logged: the options as params, ``importance.csv`` (one row per method, chart, target, level and
feature: the mean and spread of the L1-normalised share and of the raw value over the patches),
``importance.png`` (the groups' shares for each chart as a whole, one panel per chart, a bar per
method; ``importance_variables.png`` the same per variable), ``patches.csv`` (where each sampled
patch lies) and, with ``--gradcam``, each scene's Grad-CAM netCDF and PNGs under ``gradcam/``.
The same files are written to ``--out``. Metrics: ``explain_patches`` and the seconds per patch
of each method (``explain_seconds_per_patch_<method>``). Each long step says what it does in a line
(``echo``, stderr at the command line) and, on a terminal, draws a bar (patches attributed, scenes
of Grad-CAM).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
from tqdm import tqdm

from seaice_mlflow.core.attribution import Importance, Patches, Settings, attribution_table
from seaice_mlflow.core.engine import TileOptions, resolve_device
from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.core.gradcam import cam_targets
from seaice_mlflow.core.io import check_writable, write_csv
from seaice_mlflow.core.progress import progress_bar
from seaice_mlflow.models import get_architecture
from seaice_mlflow.tasks.autoice import plots
from seaice_mlflow.tasks.autoice.config import ExplainDefaults
from seaice_mlflow.tasks.autoice.explain import (
    PatchBatches,
    PatchRecord,
    features_of,
    parse_charts,
    parse_classes,
    parse_methods,
    sample_patches,
    write_gradcam,
)
from seaice_mlflow.tasks.autoice.files.windowed import open_scene
from seaice_mlflow.tasks.autoice.logged_models import load_model
from seaice_mlflow.tasks.autoice.steps.evaluate import scene_files
from seaice_mlflow.tracking.model_refs import model_tags
from seaice_mlflow.tracking.runs import model_label, plural, run_name, step_run


@dataclass
class ExplainRun:
    run_id: str
    rows: list[Importance]
    patches: list[PatchRecord]
    seconds_per_patch: dict[str, float]
    files: list[Path]  # written to --out


def check_for_patch_models(recipe, methods: Sequence[str], gradcam: bool) -> None:
    """A patch classifier slides one window per cell: DeepLIFT's per-call rules and Grad-CAM's
    single layer call do not hold for it (the other methods do)."""
    if get_architecture(recipe.model.arch).level != "patch":
        return
    if "deepliftshap" in methods:
        raise ParameterError("methods", f"deepliftshap cannot explain the patch classifier {recipe.model.arch} "
                             "(its windows go through the network in chunks); use ig, gradshap, ablation or "
                             "permutation")  # fmt: skip
    if gradcam:
        raise ParameterError("gradcam", f"Grad-CAM maps one layer call, and the patch classifier "
                             f"{recipe.model.arch} calls its head once per window; leave --gradcam out")  # fmt: skip


def explain(
    model_uri: str, data_dir: str | Path, options: ExplainDefaults = ExplainDefaults(),
    echo: Callable[[str], None] = print,
) -> ExplainRun:  # fmt: skip
    """Attribute the model's charts on patches of ``data_dir`` (and Grad-CAM its scenes) in the
    active (or a new) run; everything is checked before the model runs."""
    methods = parse_methods(options.methods)
    device = resolve_device(options.device)
    files = scene_files(data_dir)
    out = check_writable(options.out, "out")
    model, ref = load_model(model_uri, device.type, TileOptions(amp=False))  # a bad URI or option fails before the run
    recipe, network = model.recipe, model.predictor.models[0].float().eval()
    task = recipe.task
    charts = parse_charts(options.charts, task)
    chosen = parse_classes(options.classes, task, charts)
    features = features_of(options.groups, recipe.variables)
    check_for_patch_models(recipe, methods, options.gradcam)
    params = {"model_uri": model_uri, "data_dir": str(Path(data_dir).resolve()), **asdict(options), "out": str(out)}
    name = run_name("explain", model_label([model_uri]), "on", plural(len(files), "scene"))
    with step_run("explain", params, name=name) as run:
        mlflow.set_tags(model_tags([ref]))
        echo(f"drawing {options.patches} patches of {options.patch_size} px from {len(files)} scene file(s)")
        sample = sample_patches(files, recipe, charts, options.patches, options.patch_size, options.seed)
        if sample.note:
            echo(f"note: {sample.note}")
        records = sample.records
        batches = PatchBatches(sample, recipe, charts, device=device)
        classes = chosen if chosen is not None else sample.classes
        settings = Settings(steps=options.steps, baseline=options.baseline, repeats=options.repeats,
                            seed=options.seed)  # fmt: skip
        rows, seconds = [], {}
        for method in methods:
            echo(f"{method}: {len(records)} patches in {len(batches)} batch(es)")
            started = time.perf_counter()
            with progress_bar(total=len(records), desc=method, unit="patch", leave=False) as bar:
                rows += attribution_table(network, task, counted(batches, bar), charts, classes, features, [method],
                                          settings)  # fmt: skip
            seconds[method] = (time.perf_counter() - started) / len(records)
            echo(f"{method}: {seconds[method]:.3f} s per patch")
        out.mkdir(parents=True, exist_ok=True)
        written = [
            write_csv([r.as_dict() for r in rows], out / "importance.csv"),
            write_csv([asdict(r) for r in records], out / "patches.csv"),
        ]
        title = f"{model_uri}: {len(records)} patches of {options.patch_size} px, baseline {options.baseline}"
        for level, name in (("group", "importance.png"), ("variable", "importance_variables.png")):
            if any(r.level == level for r in rows):
                written.append(plots.save(plots.importance_grid(rows, charts, level, title), out / name))
        mlflow.log_metrics({"explain_patches": len(records),
                            **{f"explain_seconds_per_patch_{m}": s for m, s in seconds.items()}})  # fmt: skip
        for path in written:
            mlflow.log_artifact(str(path))
        if options.gradcam:
            targets = [t for c in charts for t in cam_targets(task.head(c), (chosen or {}).get(c))]
            provenance = {"model_uri": model_uri, "mlflow_run_id": run.info.run_id}
            echo(f"grad-cam: {len(files)} scene file(s), tiles of {options.tile} px")
            for path in progress_bar(files, desc="grad-cam", unit="scene", leave=False):
                with open_scene(path, reference=False) as scene:
                    cams = write_gradcam(scene, network, recipe, targets, out / "gradcam", options.tile, device,
                                         provenance)  # fmt: skip
                echo(f"grad-cam: {cams[0]}")
                for cam in cams:
                    mlflow.log_artifact(str(cam), "gradcam")
                written += cams
        return ExplainRun(run.info.run_id, rows, records, seconds, written)


def counted(batches: Iterable[Patches], bar: tqdm) -> Iterator[Patches]:
    """``batches``, advancing ``bar`` by each batch's patches once it has been attributed."""
    for batch in batches:
        yield batch
        bar.update(len(batch.inputs))
