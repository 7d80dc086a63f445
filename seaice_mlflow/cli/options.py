"""Click options built from the defaults dataclasses of :mod:`seaice_mlflow.tasks.autoice.config`: each option's
default, help text and allowed values are written once, there."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import Field, fields

import click

from seaice_mlflow.core.errors import option_name


def flag(name: str, help: str, default: bool = False):
    """A boolean option usable as a bare flag (``--overwrite``) or with a value
    (``--overwrite false``), so that MLproject commands can always pass ``--name {value}``."""
    return click.option(
        name, type=click.BOOL, is_flag=False, flag_value=True, default=default, show_default=True, help=help
    )


def field_option(field: Field):
    """The click option of one :func:`seaice_mlflow.tasks.autoice.config.option` field."""
    name, default, meta = option_name(field.name), field.default, field.metadata
    if isinstance(default, bool):
        return flag(name, meta["help"], default)
    if meta["choices"]:
        kind = click.Choice(meta["choices"])
    elif isinstance(default, int) and (meta["minimum"] is not None or meta["maximum"] is not None):
        kind = click.IntRange(min=meta["minimum"], max=meta["maximum"], min_open=meta["min_open"])
    else:  # a float's range is checked by its dataclass (core.defaults.check_value): nan passes click's FloatRange
        kind = type(default)
    return click.option(name, type=kind, default=default, show_default=True, help=meta["help"])


def options_from(defaults: type) -> Callable:
    """Decorator: one click option per field of the dataclass ``defaults``, in field order."""

    def decorate(command):
        for field in reversed(fields(defaults)):
            command = field_option(field)(command)
        return command

    return decorate
