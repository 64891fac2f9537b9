"""Every option shared by several ``hpcdist`` commands, each declared once: one name, type and help.

A command takes an option by decorating itself with it (``@options.backend``); where commands
differ in the default, the option's default is ``None`` and the command fills it in.
"""

from __future__ import annotations

import click

ranks = click.option(
    "-n", "--ranks", "nranks", type=int, default=None,
    help="MPI ranks, rank 0 (scheduler and driver) included  [run: a spec's resources.ranks, else 4; "
         "bench: 4 per system, peers get N-1 workers].")

backend = click.option(
    "--backend", default=None, metavar="NAME",
    help="local, thread, process or mpi (or an alias)  [run, bench: mpi, under mpiexec; "
         "doctor: the one chosen here].")

workers = click.option("--workers", type=int, default=None, help="Workers (thread/process; mpi: ranks - 1).")

timeout = click.option(
    "--timeout", type=float, default=None, metavar="SECONDS",
    help="Stop after this many seconds  [run: no limit, then exit status 124; bench: 300 per measured world; "
         "doctor: 60 per child process].")

overrides = click.option(
    "--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
    help="Override a spec key (value read as YAML), e.g. --set resources.ranks=16. Repeatable.")

resume = click.option(
    "--resume", type=click.Path(file_okay=False), default=None, metavar="RUN_DIR",
    help="Continue the pipeline run in RUN_DIR, reusing its finished results  [submit: SPEC defaults to "
         "RUN_DIR/spec.yaml].")

#: the run directory a world works in (the launcher passes it to ``hpcdist run`` under mpiexec)
run_dir = click.option("--run-dir", "run_dir", type=click.Path(file_okay=False), default=None, hidden=True)

scheduler = click.option(
    "--scheduler", default=None, metavar="NAME",
    help="Batch system instead of spec.scheduler: slurm or sge (validate: also local; status, cancel: of a bare "
         "JOB_ID, default the one installed).")

output = click.option(
    "-o", "--output", "out", type=click.Path(dir_okay=False), default=None, metavar="FILE",
    help="Write it here  [render: the script, default stdout; trace: the merged JSON, default RUN_DIR/trace.json; "
         "report: the HTML page, default RUN_DIR/report.html].")

as_json = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
