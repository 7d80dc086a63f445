"""``seaice predict``: chart files (netCDF, GeoTIFF, polygons + quicklook) for new scenes, tracked as an MLflow run."""

from __future__ import annotations

import click

from seaice_mlflow.cli.evaluate import model_uri_option
from seaice_mlflow.cli.options import options_from
from seaice_mlflow.tasks.autoice.config import PredictDefaults


@click.command("predict")
@model_uri_option
@click.option(
    "--scenes",
    multiple=True,
    required=True,
    metavar="PATH",
    help="Scene files (ready-to-train, test or raw) or folders of them; repeat it, or separate "
    "paths by commas or spaces.",
)
@options_from(PredictDefaults)
def predict_command(
    model_uri: tuple[str, ...],
    scenes: tuple[str, ...],
    out: str,
    upload_package: bool,
    probabilities: bool,
    format: str,
    crs: str,
    pixel_size: float,
    uncertainty: bool,
    dask: str,
    overwrite: bool,
    device: str,
    tile: int,
    overlap: int,
    batch: int,
) -> None:
    """Chart SIC, SOD and FLOE for whole scenes with model(s) from MLflow; log the run.

    Writes <scene_id>_charts.nc per scene (uint8 classes on the scene grid, CF flag_values and
    flag_meanings, 255 outside the swath, lat/lon tie points, provenance attributes) and a
    quicklook. --format geotiff,vector adds a GeoTIFF per chart (colour table, tie points as GCPs,
    or warped to --crs) and polygons with SIGRID-3 codes (GeoPackage). A bad scene is reported and
    skipped, the others are written, and the exit status is 1. A re-run skips the scenes whose products
    exist from the same model(s) (--overwrite charts them again); --dask local:N or tcp://HOST:PORT charts
    the scenes as tasks on a Dask cluster, each worker loading the model(s) once.
    """
    from seaice_mlflow.core.engine import TileOptions
    from seaice_mlflow.tasks.autoice.gis import GisOptions
    from seaice_mlflow.tasks.autoice.steps.predict import predict

    def report(outcome) -> None:
        if outcome.status == "written":
            products = [p for p in outcome.outputs if p.suffix != ".png"]
            names = ", ".join([str(products[0]), *(p.name for p in products[1:])])
            click.echo(f"wrote   {names} ({outcome.seconds:.1f} s)")
            if outcome.message:  # input values that were not finite, masked or filled
                click.echo(f"note    {outcome.scene_id}: {outcome.message}", err=True)
        elif outcome.status == "skipped":
            click.echo(f"skipped {outcome.message}")
        else:
            click.echo(f"FAILED  {outcome.file}: {outcome.message}", err=True)

    done = predict(
        model_uri,
        scenes,
        out,
        device,
        upload_package,
        probabilities,
        TileOptions(tile, overlap, batch),
        on_scene=report,
        format=format,
        gis=GisOptions(crs=crs, pixel_size=pixel_size),
        uncertainty=uncertainty,
        dask=dask,
        overwrite=overwrite,
        on_cluster=click.echo,
    )
    written = done.result.having("written")
    click.echo(
        f"run {done.run_id}: {len(written)} scene(s) charted in {done.out}"
        + (f", {len(skipped)} skipped (products exist)" if (skipped := done.result.having("skipped")) else "")
        + (f"; upload package {done.result.upload_package}" if done.result.upload_package else "")
    )
    if done.failed:
        click.echo(f"{len(done.failed)} scene file(s) failed (listed above)", err=True)
        raise SystemExit(1)
