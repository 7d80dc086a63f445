"""The ``seaice`` command line: one click group, one module per area."""

from __future__ import annotations

import click

from seaice_mlflow import __version__
from seaice_mlflow.core.errors import Interrupted, SeaIceError


class SeaIceGroup(click.Group):
    """A click group that shows user errors as one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context):
        from seaice_mlflow.core.interrupts import signals_interrupt
        from seaice_mlflow.core.progress import quiet_bars_off_terminal

        quiet_bars_off_terminal()
        try:
            with signals_interrupt():
                return super().invoke(ctx)
        except (SeaIceError, Interrupted) as err:
            error = click.ClickException(str(err))
            error.exit_code = getattr(err, "exit_code", error.exit_code)
            raise error from None


@click.group(cls=SeaIceGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="seaice")
def cli() -> None:
    """Sea-ice charts (SIC, SOD, FLOE) from AI4Arctic Sentinel-1 scenes, tracked with MLflow."""


def _register() -> None:
    from seaice_mlflow.cli.data import inspect_command, synth
    from seaice_mlflow.cli.evaluate import evaluate_command
    from seaice_mlflow.cli.explain import explain_command
    from seaice_mlflow.cli.optical import optical
    from seaice_mlflow.cli.pipeline import pipeline_command
    from seaice_mlflow.cli.predict import predict_command
    from seaice_mlflow.cli.preprocess import preprocess_command
    from seaice_mlflow.cli.register import register_command
    from seaice_mlflow.cli.score import score
    from seaice_mlflow.cli.serve import serve_command
    from seaice_mlflow.cli.study import study_command
    from seaice_mlflow.cli.train import train_command
    from seaice_mlflow.cli.tune import tune_command

    for command in (
        synth,
        inspect_command,
        preprocess_command,
        train_command,
        tune_command,
        study_command,
        register_command,
        score,
        evaluate_command,
        explain_command,
        predict_command,
        pipeline_command,
        serve_command,
        optical,
    ):
        cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``seaice``)."""
    cli.main(args=argv, prog_name="seaice")
