"""The tool commands: ``schema``, ``doctor``, ``bench``, ``trace`` and ``report``."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from hpcdist.cli import options
from hpcdist.errors import HpcdistError


def _given(**kw: Any) -> dict[str, Any]:
    """The options the user gave (not None): the library's defaults apply to the others."""
    return {k: v for k, v in kw.items() if v is not None}


@click.command("schema")
def schema_command() -> None:
    """Print the JSON Schema (draft 2020-12) of job specs, for editor completion."""

    from hpcdist.spec.schema import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@click.command("doctor")
@options.as_json
@options.backend
@click.option("--no-smoke", is_flag=True, help="Skip the 2-worker smoke run on each backend.")
@options.timeout
def doctor_command(as_json: bool, backend: str | None, no_smoke: bool, timeout: float | None) -> None:
    """Report versions, the MPI library, launchers, the backend chosen here and why, and
    smoke-run every backend. Exit 1 when something needed is missing or broken."""

    from hpcdist.doctor import diagnose, format_report

    report = diagnose(backend=backend, smoke=not no_smoke, **_given(timeout=timeout))
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
    sys.exit(1 if report["problems"] else 0)


@click.command("bench")
@options.ranks
@click.option("--quick", is_flag=True, help="Fewer repetitions: a smoke test, not a measurement.")
@click.option("--only", multiple=True, metavar="NAME",
              help="Run only this workload (repeatable): tiny_map, latency, bandwidth, chains, tree_sum, "
                   "rounds, idle_cpu, launch, recovery.")
@options.backend
@click.option("--peers/--no-peers", default=True, show_default=True,
              help="Also measure the backend's peers where installed: mpi4py.futures, dask.distributed and "
                   "ProcessPoolExecutor for mpi; ProcessPoolExecutor or ThreadPoolExecutor and dask otherwise.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the results as JSON here.")
@options.timeout
def bench_command(nranks: int | None, quick: bool, only: tuple[str, ...], backend: str | None, peers: bool,
                  json_path: str | None, timeout: float | None) -> None:
    """Measure per-task overhead, latency and bandwidth here, next to the peers, in one table."""
    from hpcdist.bench import run_bench
    from hpcdist.bench.report import build, render

    result = run_bench(quick=quick, only=only, peers=None if peers else (),
                       progress=lambda line: click.echo(f"bench: {line}", err=True),
                       **_given(nranks=nranks, timeout=timeout, backend=backend))
    rows = build(result)
    click.echo(render(result, rows))
    if json_path:
        try:
            with open(json_path, "w", encoding="utf-8") as fh:
                json.dump({**result, "table": rows}, fh, indent=2, default=str)
        except OSError as exc:
            raise click.ClickException(f"cannot write {json_path}: {exc.strerror}") from None
    status = result["systems"]["hpcdist"]
    if status != "ok":
        raise HpcdistError(f"bench: hpcdist {status}\n{result['stderr'].get('hpcdist', '')}")


@click.command("trace")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@options.output
def trace_command(run_dir: str, out: str | None) -> None:
    """Merge a run's per-rank traces (RUN_DIR/trace/) into one Chrome Trace Event JSON, for Perfetto
    (ui.perfetto.dev, offline too) or chrome://tracing. Exit 1 if the merged trace fails the checks."""
    from hpcdist.paths import RunDir
    from hpcdist.trace.check import check
    from hpcdist.trace.chrome import find_trace_dir, write_chrome

    out = out or str(RunDir(run_dir).trace_json)
    trace = write_chrome(find_trace_dir(run_dir), out)
    counts = trace["otherData"]["counts"]
    click.echo(f"{out}: {counts['ranks']} ranks, {counts['runs']} task runs, {counts['fetches']} fetches, "
               f"{counts['placements']} placements, {counts['flows']} flows, {counts['losses']} workers lost")
    problems = check(trace)
    for problem in problems[:20]:
        click.echo(f"hpcdist: trace: {problem}", err=True)
    if problems:
        raise HpcdistError(f"the merged trace has {len(problems)} problem(s)")


@click.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@options.output
def report_command(run_dir: str, out: str | None) -> None:
    """Write a run's report from its trace (RUN_DIR/trace/) and manifest: one self-contained HTML page
    (default RUN_DIR/report.html; summary, Gantt per rank, bytes between ranks, per function, lost workers,
    failures), and next to it report.json (the same figures) and tasks.csv (one row per task run).
    Works on a run that failed or is still running: the summary says what is missing."""
    from hpcdist.report import REPORT_HTML, write_report

    target = out or os.path.join(run_dir, REPORT_HTML)
    summary = write_report(run_dir, target)["summary"]
    state = "complete" if summary["complete"] else "partial: " + "; ".join(summary["notes"])
    click.echo(f"{target}: {summary['tasks']} tasks on {summary['ranks']} ranks in {summary['wall_s']:.3f} s, "
               f"{summary['bytes_moved']} bytes moved ({state})")
