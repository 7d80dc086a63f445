"""Click option helpers shared by the commands."""

from __future__ import annotations

import click


def flag(name: str, help: str):
    """A boolean option usable as a bare flag (``--overwrite``) or with a value
    (``--overwrite false``), so that MLproject commands can always pass ``--name {value}``."""
    return click.option(name, type=click.BOOL, is_flag=False, flag_value=True, default=False,
                        show_default=True, help=help)
