"""The ``hpcdist`` command: a thin click group, one short function per command.

The commands live by kind in :mod:`~hpcdist.cli.run` (exec, run, postmortem),
:mod:`~hpcdist.cli.batch` (validate, render, submit, status, cancel) and :mod:`~hpcdist.cli.tools`
(schema, doctor, bench, trace, report); the options several of them share are declared once, in
:mod:`~hpcdist.cli.options`. This package is the only one that imports click.

Each command calls library functions; :class:`~hpcdist.errors.HpcdistError` becomes a
one-line message on stderr and the error's exit status, never a traceback.
"""

from __future__ import annotations

import sys

import click

from hpcdist import __version__
from hpcdist.cli import batch, run, tools
from hpcdist.errors import HpcdistError
from hpcdist.exitcodes import ExitCode

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hpcdist")
def cli() -> None:
    """Run many Python tasks inside one HPC allocation, over MPI."""


for _command in (run.exec_command, run.postmortem_command, run.run_command, tools.bench_command,
                 tools.doctor_command, batch.validate_command, batch.render_command, tools.schema_command,
                 batch.submit_command, batch.status_command, batch.cancel_command, tools.trace_command,
                 tools.report_command):
    cli.add_command(_command)


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
        sys.exit(ExitCode.INTERRUPTED)
    except HpcdistError as exc:
        click.echo(f"hpcdist: error: {exc}", err=True)
        sys.exit(exc.exit_code)
