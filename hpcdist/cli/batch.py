"""The spec and batch commands: ``validate``, ``render``, ``submit``, ``status`` and ``cancel``."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING

import click

from hpcdist.cli import options

if TYPE_CHECKING:
    from hpcdist.batch import JobStatus
    from hpcdist.batch.jobs import Job


def _spec_overrides(overrides: tuple[str, ...], scheduler: str | None) -> tuple[str, ...]:
    # --scheduler is one more override, applied last
    return overrides + ((f"scheduler={scheduler}",) if scheduler else ())


@click.command("validate")
@click.argument("spec_path", metavar="SPEC")  # every problem with the file is a SpecError: one line
@options.scheduler
@options.overrides
def validate_command(spec_path: str, scheduler: str | None, overrides: tuple[str, ...]) -> None:
    """Check SPEC and report every problem at once (exit 0 when valid, 2 when not)."""
    from hpcdist.spec.model import load_spec

    spec = load_spec(spec_path, _spec_overrides(overrides, scheduler))
    r = spec.resources
    click.echo(f"{spec_path}: valid (job {spec.name}, scheduler {spec.scheduler}, {r.ranks} ranks)")


@click.command("render")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@options.scheduler
@options.output
@options.overrides
def render_command(spec_path: str, scheduler: str | None, out: str | None, overrides: tuple[str, ...]) -> None:
    """Print the SLURM or Grid Engine job script for SPEC (nothing is submitted)."""

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


@click.command("submit")
@click.argument("spec_path", metavar="[SPEC]", type=click.Path(dir_okay=False), required=False)
@click.option("--dry-run", is_flag=True, help="Make the run directory and script, but do not submit.")
@options.scheduler
@options.overrides
@options.resume
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


@click.command("status")
@click.argument("targets", metavar="[RUN_DIR | JOB_ID]...", nargs=-1)
@click.option("--watch", is_flag=True, help="Poll (backing off) until the jobs finish; print each change.")
@options.as_json
@options.scheduler
@click.option("--interval", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True,
              help="First --watch polling interval, s.")
def status_command(targets: tuple[str, ...], watch: bool, as_json: bool, scheduler: str | None,
                   interval: float) -> None:
    """Show the state of jobs (one queue query for all). Exit 0 completed, 1 failed/cancelled/timeout,
    2 usage, 3 batch command failed, 4 unknown to the batch system, 10 pending/running
    (several jobs: 10 if any is unfinished, else 1 if any failed, else 4 if any is unknown).

    --json prints one JSON object per job and poll, one per line (job_id, system, state, raw_state,
    exit_code, reason, source, run_dir, output, progress)."""

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


@click.command("cancel")
@click.argument("target", metavar="RUN_DIR | JOB_ID")
@options.scheduler
def cancel_command(target: str, scheduler: str | None) -> None:
    """Cancel a submitted job (exit 4 when the batch system had nothing to cancel)."""
    from hpcdist.batch import jobs

    job = jobs.resolve_job(target, scheduler)
    job.cancel()
    click.echo(f"cancel requested for {job.system} job {job.job_id}")
