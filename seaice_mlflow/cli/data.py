"""``seaice synth`` and ``seaice inspect``."""

from __future__ import annotations

from pathlib import Path

import click

from seaice_mlflow.cli.output import echo_json
from seaice_mlflow.core.errors import SeaIceError
from seaice_mlflow.core.progress import progress_bar
from seaice_mlflow.tasks.autoice.synthetic import DEFAULT_SIZE, FORMATS, MIN_SIZE, SPLITS, SYNTH_WORKERS


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--scenes", "n_scenes", type=click.IntRange(min=1), default=1, show_default=True, help="Number of scenes to write."
)
@click.option(
    "--size",
    nargs=2,
    type=click.IntRange(min=MIN_SIZE),
    default=DEFAULT_SIZE,
    show_default=True,
    metavar="H W",
    help="Scene size in 80 m pixels (lines, samples).",
)
@click.option(
    "--split",
    type=click.Choice(SPLITS),
    default="train",
    show_default=True,
    help="train: charts in the file; test: _prep.nc without charts plus _prep_reference.nc.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="ready",
    show_default=True,
    help="ready: 80 m ready-to-train files; raw: 40 m files with egg-coded ice charts.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same scenes.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=SYNTH_WORKERS,
    show_default=True,
    help="Scenes made at once, one process each (the same scenes for any number).",
)
def synth(out_dir: Path, n_scenes: int, size: tuple[int, int], split: str, fmt: str, seed: int, workers: int) -> None:
    """Write synthetic AI4Arctic scenes to OUT_DIR in the real file layouts."""
    from seaice_mlflow.tasks.autoice.synthetic import synthesize

    with progress_bar(total=n_scenes, desc="synthetic scenes", unit="scene") as bar:
        paths = synthesize(
            out_dir,
            n_scenes=n_scenes,
            size=size,
            split=split,
            fmt=fmt,
            seed=seed,
            on_scene=lambda _: bar.update(),
            workers=workers,
        )
    for path in paths:
        click.echo(str(path))


@click.command("inspect")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def inspect_command(paths: tuple[Path, ...], as_json: bool) -> None:
    """Check scene files (or folders of them) before a long job.

    Prints each file's kind, shape, variables, valid fraction and class histograms; exits
    non-zero after listing every bad file with its reason.
    """
    from seaice_mlflow.tasks.autoice.files.inspect import expand_paths, inspect_file

    files = expand_paths(list(paths))
    if not files:
        raise SeaIceError(f"no .nc files in {', '.join(map(str, paths))}; give scene files or folders of them")
    reports = []
    for path in progress_bar(files, desc="inspecting", unit="file", leave=False):
        reports.append(inspect_file(path))
    ok = all(r.ok for r in reports)
    if as_json:
        echo_json({"ok": ok, "files": [r.as_dict() for r in reports]})
    else:
        for report in reports:
            click.echo(report.summary())
            for chart, counts in report.histograms.items():
                total = max(sum(counts), 1)
                classes = " ".join(f"{k}:{100 * c / total:.1f}%" for k, c in enumerate(counts[:-1]))
                click.echo(f"    {chart:<4} {classes}  masked:{100 * counts[-1] / total:.1f}%")
        bad = sum(not r.ok for r in reports)
        click.echo(f"{len(reports) - bad} file(s) OK, {bad} bad")
    if not ok:
        raise SystemExit(1)
