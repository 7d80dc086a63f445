"""``seaice register`` and ``seaice optical register``: the experiment's best model becomes the registered champion."""

from __future__ import annotations

import click

from seaice_mlflow.cli.options import options_from
from seaice_mlflow.core.defaults import RegisterDefaults


def register_command_of(defaults: type[RegisterDefaults]) -> click.Command:
    """The ``register`` command with the option defaults of ``defaults`` (its task's model name)."""

    @click.command("register")
    @options_from(defaults)
    def register_command(**options) -> None:
        """Register the experiment's best model and move the champion alias to the best version.

        Models of the task family (--task) are compared on a metric they all have; models with
        non-finite weights are skipped. Idempotent; concurrent calls converge on one champion, the
        best version by the metric.
        """
        from seaice_mlflow.tracking.registration import register

        promotion = register(defaults(**options)).promotion
        for line in promotion.skipped:
            click.echo(line, err=True)
        click.echo(promotion.message)

    return register_command


register_command = register_command_of(RegisterDefaults)
