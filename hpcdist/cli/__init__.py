"""The ``hpcdist`` command: a thin click group, one short function per command.

Each command calls library functions; :class:`~hpcdist.errors.HpcdistError` becomes a
one-line message on stderr and the error's exit status, never a traceback.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from hpcdist import __version__
from hpcdist.errors import HpcdistError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hpcdist")
def cli() -> None:
    """Run many Python tasks inside one HPC allocation, over MPI."""


# --- runtime commands (exec, run, bench) -----------------------------------------------


@cli.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("script", type=click.Path(dir_okay=False))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def exec_command(script: str, args: tuple[str, ...]) -> None:
    """Inside an MPI world: rank 0 runs SCRIPT, every other rank is a worker.

    Start it with `mpiexec -n N hpcdist exec script.py [ARGS...]`.
    """
    from hpcdist.launcher import exec_script

    sys.exit(exec_script(script, args))


@cli.command("postmortem")
@click.argument("state_dir", type=click.Path(file_okay=False))
def postmortem_command(state_dir: str) -> None:
    """Print what each worker was running when a job ended (STATE_DIR = $HPCDIST_STATE_DIR)."""
    from hpcdist.launcher import postmortem

    for line in postmortem(state_dir):
        click.echo(f"hpcdist: {line}")


@cli.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-n", "--ranks", "nranks", type=int, default=None,
              help="MPI ranks, rank 0 (scheduler and driver) included  [default: a spec's resources.ranks, else 4].")
@click.option("--backend", default=None, metavar="NAME",
              help="local, thread, process or mpi (or an alias); default mpi, under mpiexec.")
@click.option("--workers", type=int, default=None, help="Workers (thread/process; mpi: ranks - 1).")
@click.option("--timeout", type=float, default=None, help="Stop the run after this many seconds (exit status 124).")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="SPEC only: override a spec key (repeatable).")
@click.option("--resume", type=click.Path(file_okay=False), default=None, metavar="RUN_DIR",
              help="SPEC only: continue the pipeline run in RUN_DIR, reusing its finished results.")
@click.option("--run-dir", "run_dir", type=click.Path(file_okay=False), default=None, hidden=True)
@click.argument("script", type=click.Path(dir_okay=False))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run_command(nranks: int | None, backend: str | None, workers: int | None, timeout: float | None,
                overrides: tuple[str, ...], resume: str | None, run_dir: str | None,
                script: str, args: tuple[str, ...]) -> None:
    """Run SCRIPT locally: under mpiexec (`hpcdist run -n 4 script.py [ARGS...]`) or, with
    `--backend thread|process|local [--workers N]`, in this process without MPI.

    With a job spec (`hpcdist run SPEC.yaml [-n 4] [--set k=v] [--resume RUN_DIR]`) it runs the
    spec's pipeline and prints the run directory (see docs/pipelines.md)."""
    from hpcdist.launcher import check_timeout, run_local, run_script, split_run_options

    check_timeout(timeout)

    # --- pipelines (issue 5) ---
    from hpcdist.pipeline.run import is_spec, parse_trailing, run_spec

    if is_spec(script):
        opts = dict(nranks=nranks, backend=backend, workers=workers, timeout=timeout, resume=resume,
                    run_dir=run_dir)
        later = parse_trailing(args)
        opts.update({k: v for k, v in later.items() if v is not None and k != "overrides"})
        sys.exit(run_spec(script, overrides=overrides + tuple(later["overrides"]), **opts))
    if overrides or resume or run_dir:
        raise HpcdistError("--set, --resume and --run-dir apply to a job spec (hpcdist run SPEC.yaml)")
    # --- end pipelines ---
    name, nranks, workers = split_run_options(backend, nranks, workers)
    if name != "mpi":
        sys.exit(run_local(script, args, name, workers, timeout=timeout))
    sys.exit(run_script(script, args, nranks, timeout=timeout))


@cli.command("bench")
@click.option("-n", "--ranks", "nranks", type=int, default=4, show_default=True,
              help="Processes per system, driver included (peers get N-1 workers).")
@click.option("--quick", is_flag=True, help="Fewer repetitions: a smoke test, not a measurement.")
@click.option("--only", multiple=True, metavar="NAME",
              help="Run only this workload (repeatable): tiny_map, latency, bandwidth, chains, tree_sum, "
                   "rounds, idle_cpu, launch.")
@click.option("--backend", default="mpi", show_default=True, metavar="NAME",
              help="hpcdist's backend: mpi (under mpiexec), thread, process or local (or an alias).")
@click.option("--peers/--no-peers", default=True, show_default=True,
              help="Also measure the backend's peers where installed: mpi4py.futures, dask.distributed and "
                   "ProcessPoolExecutor for mpi; ProcessPoolExecutor or ThreadPoolExecutor and dask otherwise.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the results as JSON here.")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds one measured world may run.")
def bench_command(nranks: int, quick: bool, only: tuple[str, ...], backend: str, peers: bool,
                  json_path: str | None, timeout: float) -> None:
    """Measure per-task overhead, latency and bandwidth here, next to the peers, in one table."""
    from hpcdist.bench import run_bench
    from hpcdist.bench.report import build, render

    result = run_bench(nranks, quick=quick, only=only, peers=None if peers else (), timeout=timeout,
                       progress=lambda line: click.echo(f"bench: {line}", err=True), backend=backend)
    rows = build(result)
    click.echo(render(result, rows))
    if json_path:
        import json

        try:
            with open(json_path, "w", encoding="utf-8") as fh:
                json.dump({**result, "table": rows}, fh, indent=2, default=str)
        except OSError as exc:
            raise click.ClickException(f"cannot write {json_path}: {exc.strerror}") from None
    status = result["systems"]["hpcdist"]
    if status != "ok":
        raise HpcdistError(f"bench: hpcdist {status}\n{result['stderr'].get('hpcdist', '')}")


# --- environment (doctor) ---------------------------------------------------------------


@cli.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--backend", default=None, metavar="NAME", help="Resolve this backend name instead of the default.")
@click.option("--no-smoke", is_flag=True, help="Skip the 2-worker smoke run on each backend.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds for each child process.")
def doctor_command(as_json: bool, backend: str | None, no_smoke: bool, timeout: float) -> None:
    """Report versions, the MPI library, launchers, the backend chosen here and why, and
    smoke-run every backend. Exit 1 when something needed is missing or broken."""
    import json

    from hpcdist.doctor import diagnose, format_report

    report = diagnose(backend=backend, smoke=not no_smoke, timeout=timeout)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
    sys.exit(1 if report["problems"] else 0)


# --- spec and rendering commands (validate, render, schema) ----------------------------


def _spec_overrides(overrides: tuple[str, ...], scheduler: str | None) -> tuple[str, ...]:
    # --scheduler is one more override, applied last
    return overrides + ((f"scheduler={scheduler}",) if scheduler else ())


_set_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
    help="Override a spec key (value read as YAML), e.g. --set resources.ranks=16. Repeatable.",
)


@cli.command("validate")
@click.argument("spec_path", metavar="SPEC")  # every problem with the file is a SpecError: one line
@click.option("--scheduler", type=click.Choice(["slurm", "sge", "local"]), help="Override spec.scheduler.")
@_set_option
def validate_command(spec_path: str, scheduler: str | None, overrides: tuple[str, ...]) -> None:
    """Check SPEC and report every problem at once (exit 0 when valid, 2 when not)."""
    from hpcdist.spec.model import load_spec

    spec = load_spec(spec_path, _spec_overrides(overrides, scheduler))
    r = spec.resources
    click.echo(f"{spec_path}: valid (job {spec.name}, scheduler {spec.scheduler}, {r.ranks} ranks)")


@cli.command("render")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("--scheduler", type=click.Choice(["slurm", "sge"]), help="Batch system (default: spec.scheduler).")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), help="Write the script here (default: stdout).")
@_set_option
def render_command(spec_path: str, scheduler: str | None, out: str | None, overrides: tuple[str, ...]) -> None:
    """Print the SLURM or Grid Engine job script for SPEC (nothing is submitted)."""
    import os

    from hpcdist.batch import render
    from hpcdist.spec.model import load_spec

    spec = load_spec(spec_path, _spec_overrides(overrides, scheduler))
    script = render(spec, None, spec.run_dir())
    if out is None:
        click.echo(script, nl=False)
        return
    try:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(script)
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror}") from None
    os.chmod(out, 0o755)


@cli.command("schema")
def schema_command() -> None:
    """Print the JSON Schema (draft 2020-12) of job specs, for editor completion."""
    import json

    from hpcdist.spec.schema import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


# --- batch commands (submit, status, cancel) ---------------------------------------------

if TYPE_CHECKING:
    from hpcdist.batch import JobStatus
    from hpcdist.batch.jobs import Job


@cli.command("submit")
@click.argument("spec_path", metavar="[SPEC]", type=click.Path(dir_okay=False), required=False)
@click.option("--dry-run", is_flag=True, help="Make the run directory and script, but do not submit.")
@click.option("--scheduler", default=None, help="Batch system to use instead of the spec's (slurm or sge).")
@_set_option
@click.option("--resume", type=click.Path(file_okay=False), default=None, metavar="RUN_DIR",
              help="Continue the pipeline in RUN_DIR (reusing its results) instead of making a new run "
                   "directory; SPEC defaults to RUN_DIR/spec.yaml.")
@click.option("--parsable", is_flag=True,
              help="Print only the job id (for sbatch --dependency=afterok:ID or qsub -hold_jid ID).")
@click.option("--resubmit", "automatic", is_flag=True, hidden=True,
              help="Used by job scripts after the walltime status: count against program.pipeline.resubmit.")
def submit_command(spec_path: str | None, dry_run: bool, scheduler: str | None, overrides: tuple[str, ...],
                   resume: str | None, parsable: bool, automatic: bool) -> None:
    """Validate SPEC, make its run directory and submit the job script
    (`hpcdist submit [SPEC] --resume RUN_DIR`: continue a pipeline run there)."""
    from hpcdist.batch.submission import submit

    if spec_path is None and resume is None:
        raise click.UsageError("missing argument SPEC (or --resume RUN_DIR)")
    if parsable and dry_run:
        raise click.UsageError("--parsable prints the job id, and a --dry-run has none")
    job = submit(spec_path, dry_run=dry_run, scheduler=scheduler, overrides=overrides, resume=resume,
                 automatic=automatic)
    if parsable:
        click.echo(job.job_id)
        return
    click.echo(f"run directory: {job.run_dir}" + (f" (resumed: {job.script.name})" if resume and job.script else ""))
    click.echo(f"job id: {job.job_id}" if job.job_id is not None else f"dry run: {job.system} job not submitted")


@cli.command("status")
@click.argument("targets", metavar="[RUN_DIR | JOB_ID]...", nargs=-1)
@click.option("--watch", is_flag=True, help="Poll (backing off) until the jobs finish; print each change.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per job and poll, one per line (job_id, system, state, raw_state, exit_code, "
                   "reason, source, run_dir, output, progress).")
@click.option("--scheduler", default=None, help="Batch system of a bare JOB_ID (default: the one installed).")
@click.option("--interval", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True,
              help="First --watch polling interval, s.")
def status_command(targets: tuple[str, ...], watch: bool, as_json: bool, scheduler: str | None,
                   interval: float) -> None:
    """Show the state of jobs (one queue query for all). Exit 0 completed, 1 failed/cancelled/timeout,
    2 usage, 3 batch command failed, 4 unknown to the batch system, 10 pending/running
    (several jobs: 10 if any is unfinished, else 1 if any failed, else 4 if any is unknown)."""
    import time

    from hpcdist.batch import FINAL_STATES, jobs

    job_list = [jobs.resolve_job(t, scheduler) for t in targets] if targets else [jobs.resolve_job(None, scheduler)]
    if not as_json:
        for job in job_list:
            if job.run_dir is not None:
                click.echo(f"run directory: {job.run_dir}")
    states = jobs.statuses(job_list)
    last: list[object] = [None] * len(job_list)
    progress: list[dict | None] = [None] * len(job_list)
    delay = interval
    while True:
        for i, (job, st) in enumerate(zip(job_list, states)):
            # a progress.json being rewritten (partial) shows nothing: keep the last report
            st.progress = progress[i] = st.progress if st.progress is not None else progress[i]
            seen = (st.state, st.exit_code, st.progress)
            if seen != last[i]:
                _echo_status(job, st, as_json)
                last[i] = seen
        if not watch or all(st.state in FINAL_STATES for st in states):
            break
        time.sleep(delay)
        delay = min(delay * 1.5, 30.0)
        states = jobs.statuses(job_list)
    sys.exit(jobs.combined_exit_code([st.state for st in states]))


def _echo_status(job: Job, st: JobStatus, as_json: bool = False) -> None:
    import json

    output = job.output_file()
    if as_json:
        click.echo(json.dumps({
            "job_id": st.job_id, "system": job.system, "state": st.state, "raw_state": st.raw_state,
            "exit_code": st.exit_code, "reason": st.reason, "source": st.source,
            "run_dir": str(job.run_dir) if job.run_dir is not None else None,
            "output": str(output) if output is not None else None, "progress": st.progress,
        }, sort_keys=False))
        return
    raw = f" [{st.raw_state}]" if st.raw_state not in ("", st.state) else ""
    click.echo(f"job {st.job_id} ({job.system}): {st.state}{raw}")
    if st.reason:
        click.echo(f"  reason: {st.reason}")
    if st.exit_code is not None:
        click.echo(f"  exit code: {st.exit_code}")
    if output is not None:
        click.echo(f"  output: {output}" + ("" if output.exists() else " (not written yet)"))
    p = st.progress
    if p is not None:
        click.echo(f"  progress: {p['done']}/{p['total']} done, {p['failed']} failed, {p['running']} running "
                   f"(updated {p['updated']})")


@cli.command("cancel")
@click.argument("target", metavar="RUN_DIR | JOB_ID")
@click.option("--scheduler", default=None, help="Batch system of a bare JOB_ID (default: the one installed).")
def cancel_command(target: str, scheduler: str | None) -> None:
    """Cancel a submitted job (exit 4 when the batch system had nothing to cancel)."""
    from hpcdist.batch import jobs

    job = jobs.resolve_job(target, scheduler)
    job.cancel()
    click.echo(f"cancel requested for {job.system} job {job.job_id}")


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
