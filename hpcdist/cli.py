"""The ``hpcdist`` command: a thin click group, one short function per command.

Each command calls library functions; :class:`~hpcdist.errors.HpcdistError` becomes a
one-line message on stderr and the error's exit status, never a traceback.
"""

from __future__ import annotations

import sys

import click

from hpcdist import __version__
from hpcdist.errors import HpcdistError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hpcdist")
def cli() -> None:
    """Run many Python tasks inside one HPC allocation, over MPI."""


# --- runtime commands (exec, run, bench) -----------------------------------------------


# --- spec and rendering commands (validate, render, schema) ----------------------------


# --- batch commands (submit, status, cancel) ---------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    try:
        cli.main(args=argv, prog_name="hpcdist", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except HpcdistError as exc:
        click.echo(f"hpcdist: error: {exc}", err=True)
        sys.exit(exc.exit_code)
