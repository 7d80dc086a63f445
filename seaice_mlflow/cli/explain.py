"""``seaice explain``: which inputs and which places drive each chart of a logged model."""

from __future__ import annotations

from pathlib import Path

import click

from seaice_mlflow.cli.options import options_from
from seaice_mlflow.cli.output import echo_json
from seaice_mlflow.tasks.autoice.config import ExplainDefaults


@click.command("explain")
@click.option("--model-uri", required=True, metavar="URI", help="A model logged by `seaice train` (runs:/<run>/model, "
              "models:/m-<id>, models:/<name>@champion).")  # fmt: skip
@click.option("--data-dir", required=True, type=click.Path(path_type=Path),
              help="Scenes with reference charts to draw the patches from (and to Grad-CAM).")  # fmt: skip
@options_from(ExplainDefaults)
def explain_command(model_uri: str, data_dir: Path, **options) -> None:
    """Attribute each chart to the model's input variables and groups on patches of DATA_DIR:
    Integrated Gradients, GradientSHAP, DeepLIFT-SHAP and Feature Ablation (Captum), and the
    permutation importance (drop of the official score when a group is shuffled). Logs
    importance.csv and a bar grid per chart to an MLflow run ("explain"); --gradcam adds
    class-activation maps of every scene (netCDF on the scene grid, PNG overlays).

    Example: seaice explain --model-uri models:/seaice-charts@champion --data-dir test --charts SOD,FLOE --gradcam
    """
    from seaice_mlflow.tasks.autoice.steps.explain import explain

    settings = ExplainDefaults(**options)
    result = explain(model_uri, data_dir, settings, echo=lambda line: click.echo(line, err=True))
    if settings.json:
        echo_json([r.as_dict() for r in result.rows], indent=1)
        return
    for chart in dict.fromkeys(r.head for r in result.rows):
        for method in dict.fromkeys(r.method for r in result.rows):
            ranked = sorted((r for r in result.rows if r.head == chart and r.method == method and r.target == "all"
                             and r.level == "group"), key=lambda r: -r.share)  # fmt: skip
            if ranked:
                top = ", ".join(f"{r.feature} {100 * r.share:.0f}%" for r in ranked[:3])
                click.echo(f"{chart} {method}: {top}")
    click.echo(f"run {result.run_id}: {len(result.patches)} patches; files in {settings.out}")
