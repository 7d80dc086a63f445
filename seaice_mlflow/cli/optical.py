"""``seaice optical``: close-range optical ice segmentation (``inspect`` a photo folder, ``synth``
photos, ``train`` a segmentation network or floe detector, ``evaluate`` it, ``register`` the
champion, ``predict`` masks or floes, or the whole ``pipeline``)."""

from __future__ import annotations

from pathlib import Path

import click

from seaice_mlflow.cli.options import options_from
from seaice_mlflow.cli.output import echo_json
from seaice_mlflow.cli.register import register_command_of
from seaice_mlflow.core.lists import split_paths
from seaice_mlflow.core.progress import progress_bar
from seaice_mlflow.tasks.optical.config import (
    MASK_KINDS,
    SYNTH_MIN_SIZE,
    SYNTH_SIZE,
    OpticalEvaluateDefaults,
    OpticalPipelineDefaults,
    OpticalPredictDefaults,
    OpticalRegisterDefaults,
    OpticalTrainDefaults,
)


@click.group("optical")
def optical() -> None:
    """Close-range optical ice segmentation: RGB photos from shore cameras, ships and drones."""


@optical.command("inspect")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--classes",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Class table: PixelAnnotationTool config.json or a 'name colour' file "
    "[default: config.json or classes*.txt in FOLDER or its parent].",
)
@click.option(
    "--masks",
    type=click.Choice(MASK_KINDS),
    default="auto",
    show_default=True,
    help="How labels of images/+labels/ and training/+validation/ folders hold classes: "
    "ids (R=G=B, grey or palette), colours of the class table, or auto (the first label decides).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def inspect_command(folder: Path, classes: Path | None, masks: str, as_json: bool) -> None:
    """Check a folder of photos and labels before a long job.

    Detects the layout, reads the class table, and prints each photo's size, label kind, split and classes;
    exits non-zero after listing every photo with a problem (unreadable, no label, a label of another size,
    ids or colours missing from the class table).
    """
    from seaice_mlflow.tasks.optical.inspect import inspect_folder
    from seaice_mlflow.tasks.optical.readers import open_folder

    opened = open_folder(folder, classes=classes, masks=masks)
    with progress_bar(opened.photos, desc="inspecting", unit="photo", leave=False) as bar:
        report = inspect_folder(opened, bar)
    if as_json:
        echo_json(report.as_dict())
    else:
        for photo in report.photos:
            click.echo(photo.summary())
        click.echo(report.summary())
    if not report.ok:
        raise SystemExit(1)


@optical.command("synth")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--images", "n_images", type=click.IntRange(min=1), required=True, help="Number of photos to write.")
@click.option(
    "--size",
    nargs=2,
    type=click.IntRange(min=SYNTH_MIN_SIZE),
    default=SYNTH_SIZE,
    show_default=True,
    metavar="H W",
    help="Photo size in pixels (rows, columns).",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Same seed, same photos.")
def synth_command(out_dir: Path, n_images: int, size: tuple[int, int], seed: int) -> None:
    """Write synthetic ice photos to OUT_DIR in the PixelAnnotationTool layout (with config.json)."""
    from seaice_mlflow.tasks.optical.synthetic import synthesize_photos

    for path in synthesize_photos(out_dir, n_images=n_images, size=size, seed=seed):
        click.echo(str(path))


@optical.command("train")
@click.option("--data-dir", required=True, type=click.Path(path_type=Path),
              help="Photo folder in any supported layout (with its class table).")  # fmt: skip
@options_from(OpticalTrainDefaults)
def train_command(data_dir: Path, **options) -> None:
    """Train a segmentation network (or, with --model maskrcnn, a floe detector) on the photos of
    DATA_DIR: random crops of the training photos, whole-photo validation scored by mIoU (floe F1),
    checkpoints and an MLflow run (optical_train).

    Example: seaice optical train --data-dir photos --model upernet --encoder resnet34 --epochs 50
    """
    from seaice_mlflow.cli.train import EpochLines
    from seaice_mlflow.models import get_architecture
    from seaice_mlflow.tasks.optical.steps.train import train

    settings = OpticalTrainDefaults(**options)
    score = "floe F1" if get_architecture(settings.model).level == "instance" else "mIoU"
    lines = EpochLines(settings.epochs, lambda metrics: f"val {score} {metrics['val_combined']:.2f}", err=True)
    result = train(data_dir, settings, on_epoch=lines)
    click.echo(f"run {result.run_id}: best val {score} {result.best_val_combined} after {result.epochs} epoch(s); "
               f"model {result.model_uri}")  # fmt: skip


MODEL_URI_HELP = (
    "An optical model (models:/seaice-optical@champion, models:/m-<id>, runs:/<run>/model); "
    "repeat it (or separate URIs by commas) for the ensemble of mask models."
)


@optical.command("evaluate")
@click.option("--model-uri", "model_uri", multiple=True, required=True, metavar="URI", help=MODEL_URI_HELP)
@click.option("--data-dir", required=True, type=click.Path(path_type=Path), help="Labelled photos, any layout.")
@options_from(OpticalEvaluateDefaults)
def evaluate_command(model_uri: tuple[str, ...], data_dir: Path, **options) -> None:
    """Score an optical model (or an ensemble) on the labelled photos of DATA_DIR: mIoU (with and
    without sky and background), pixel accuracy, per-class IoU and F1, in percent; logged as an MLflow run."""
    from seaice_mlflow.tasks.optical.masks import PhotoScores
    from seaice_mlflow.tasks.optical.steps.evaluate import evaluate

    settings = OpticalEvaluateDefaults(**options)
    result = evaluate(model_uri, data_dir, settings.classes, settings.masks, settings.device, settings.tile,
                      settings.overlap, warn=lambda line: click.echo(line, err=True))  # fmt: skip
    s = result.scores
    if settings.json:
        echo_json(s.as_dict(), indent=1)
    elif isinstance(s, PhotoScores):
        click.echo(f"run {result.run_id}: mIoU {s.miou:.2f} ({s.miou_without_background:.2f} without sky/background),"
                   f" pixel accuracy {s.pixel_accuracy:.2f} on {s.photos} photo(s)")  # fmt: skip
    else:
        click.echo(f"run {result.run_id}: floe F1 {s.f1:.2f} (precision {s.precision:.2f}, recall "
                   f"{s.recall:.2f}; {s.matched} of {s.reference} floes found, {s.predicted} detected) on "
                   f"{s.photos} photo(s)")  # fmt: skip


@optical.command("predict")
@click.option("--model-uri", "model_uri", multiple=True, required=True, metavar="URI", help=MODEL_URI_HELP)
@click.option("--images", required=True, multiple=True,
              help="Photo files or folders (repeat the option, or separate them by commas).")  # fmt: skip
@options_from(OpticalPredictDefaults)
def predict_command(model_uri: tuple[str, ...], images: tuple[str, ...], **options) -> None:
    """Masks of photos in the PixelAnnotationTool convention (<stem>_mask.png, <stem>_color_mask.png)
    and class_fractions.json, so that an annotator can correct a prediction in the tool; with a
    floe detector, <stem>_floes.png (16-bit floe ids), floe_sizes.json and floe_sizes.csv."""
    from seaice_mlflow.tasks.optical.steps.predict import predict

    settings = OpticalPredictDefaults(**options)
    result = predict(model_uri, split_paths(images), settings.out, settings.device, settings.tile, settings.overlap,
                     echo=lambda line: click.echo(line, err=True))  # fmt: skip
    click.echo(f"run {result.run_id}: {len(result.written)} file(s) in {settings.out}")
    if result.failed:
        raise SystemExit(1)


optical.add_command(register_command_of(OpticalRegisterDefaults))


@optical.command("pipeline")
@options_from(OpticalPipelineDefaults)
def pipeline_command(**options) -> None:
    """synth -> train -> evaluate -> register -> predict, as child runs of one MLflow run (optical_main)."""
    from seaice_mlflow.tasks.optical.steps.main import main

    done = main(OpticalPipelineDefaults(**options))
    result = done.result
    click.echo(f"test mIoU {result.scores.get('test_miou', float('nan')):.2f} "
               f"({result.scores.get('test_miou_without_background', float('nan')):.2f} without sky/background); "
               f"champion {result.champion_uri}")  # fmt: skip
    for line in result.models.lines():
        click.echo(line)
    click.echo(f"masks: {result.masks}")
    click.echo("open the MLflow UI: mlflow ui --backend-store-uri " + done.tracking_uri)
