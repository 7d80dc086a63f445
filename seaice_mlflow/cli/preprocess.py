"""``seaice preprocess``: scenes -> the chunked training store, tracked as an MLflow run."""

from __future__ import annotations

from pathlib import Path

import click

from seaice_mlflow.cli.options import options_from
from seaice_mlflow.tasks.autoice.config import PreprocessDefaults


@click.command("preprocess")
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of AI4Arctic scenes: ready-to-train, raw, or test files with their references.",
)
@options_from(PreprocessDefaults)
def preprocess_command(data_dir: Path, **options) -> None:
    """Convert a folder of scenes into the chunked training store (and log it to MLflow).

    Options, --out and the split sizes are checked before anything is converted or logged.
    Scenes already in the store with the same checksum and parameters are skipped; a bad scene
    is reported and skipped, the others land, and the exit status is 1.
    """
    from seaice_mlflow.tasks.autoice.steps.preprocess import preprocess

    done = preprocess(data_dir, PreprocessDefaults(**options))
    result = done.result
    click.echo(
        f"store {done.store}: {len(result.processed)} scene(s) converted, {len(result.skipped)} already "
        f"there, {len(result.failed)} failed; splits: "
        + ", ".join(f"{s} {sum(r['split'] == s for r in done.scenes)}" for s in ("train", "val", "test"))
    )
    for failure in result.failed:
        click.echo(f"FAILED {failure['file']}: {failure['problem']}", err=True)
    if result.failed:
        raise SystemExit(1)
