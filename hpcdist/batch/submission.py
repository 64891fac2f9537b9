"""Submitting a job spec to a batch system: a new run directory, or a run continued.

A submission makes a *run directory* holding the rendered script (``job.sh``), the resolved
spec (``spec.yaml``) and the job record (``job.json``); the job writes its output there. The
directory is built under a temporary sibling name and renamed into place only after the
batch system accepted the job, so a rejected submission leaves nothing behind. The run
directory (and the timestamp naming it) is chosen here, once; rendering is given it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

from hpcdist.batch import get_system, render
from hpcdist.batch.jobs import Job
from hpcdist.batch.prepare import SUBMIT_TIMEOUT, require_submittable, spec_with
from hpcdist.batch.record import write_record
from hpcdist.batch.resume import submit_resume
from hpcdist.errors import RunDirError, SpecError, SubmitError
from hpcdist.paths import RunDir
from hpcdist.spec.dump import spec_to_yaml
from hpcdist.spec.model import TIMESTAMP_FORMAT, JobSpec

__all__ = ["submit"]


def submit(
    spec: Any,
    dry_run: bool = False,
    *,
    scheduler: str | None = None,
    overrides: Iterable[str] = (),
    resume: str | os.PathLike[str] | None = None,
    automatic: bool = False,
) -> Job:
    """Validate, render and submit a job spec; make its run directory (or continue one).

    Args:
        spec: a :class:`~hpcdist.spec.model.JobSpec`, or the path of a spec file; with ``resume``
            also None: the run directory's own resolved ``spec.yaml``.
        dry_run: do everything but submit (the run directory is made, ``job_id`` is None).
        scheduler: ``slurm`` or ``sge`` instead of the spec's own ``scheduler``.
        overrides: ``key.path=value`` settings applied to the spec file (spec paths only).
        resume: an existing pipeline run directory: submit a job that continues the pipeline
            there, reusing its results (see :mod:`hpcdist.batch.resume`); no new directory.
        automatic: with ``resume``: the job script resubmitting itself after the walltime
            status, counted against ``program.pipeline.resubmit``.

    Returns:
        The submitted job, with :attr:`Job.run_dir` in place.

    Raises:
        SpecError: the spec is invalid (nothing is submitted).
        RenderError: the spec cannot be rendered for its batch system.
        SubmitError: the batch system rejected the job; the message is its own.
        RunDirError: ``resume`` is not a pipeline run directory, or its newest job still runs.
    """
    if resume is not None:
        if dry_run:
            raise RunDirError("--dry-run and --resume cannot be combined; see the script with hpcdist render SPEC")
        return submit_resume(spec, resume, scheduler=scheduler, overrides=overrides, automatic=automatic)
    if automatic:
        raise RunDirError("an automatic resubmission needs the run directory to resume")
    if spec is None:
        raise SpecError("no job spec given (hpcdist submit SPEC)")
    spec = spec_with(spec, scheduler, overrides)
    require_submittable(spec, "to run locally: hpcdist run")
    return _submit_new(spec, dry_run)


def _submit_new(spec: JobSpec, dry_run: bool) -> Job:
    system = get_system(spec.scheduler)
    run_dir = spec.run_dir(free_timestamp(spec))
    script_text = render(spec, spec.scheduler, run_dir)

    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", suffix=".partial", dir=run_dir.parent))
    record: dict[str, Any] = {}
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; a run directory is not
        building = RunDir(tmp)
        building.script.write_text(script_text, encoding="utf-8")
        building.script.chmod(0o755)
        building.spec.write_text(spec_to_yaml(spec), encoding="utf-8")
        record = {
            "system": spec.scheduler,
            "job_id": None,
            "submitted": None,
            "script": str(RunDir(run_dir).script),
            "spec": str(spec.path),
            "name": spec.name,
        }
        if dry_run:
            record["dry_run"] = True
        else:
            record["job_id"] = system.submit(building.script, SUBMIT_TIMEOUT)
            record["submitted"] = time.time()
        write_record(tmp, record)
        os.rename(tmp, run_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if record.get("job_id") is not None and not isinstance(exc, KeyboardInterrupt):
            raise SubmitError(
                f"job {record['job_id']} was submitted but its run directory {run_dir} could not be "
                f"put in place ({exc}); cancel it with: hpcdist cancel {record['job_id']} --scheduler {spec.scheduler}"
            ) from exc
        raise
    return Job.from_run_dir(run_dir)


def free_timestamp(spec: JobSpec) -> str:
    """A timestamp (now) whose run directory does not exist yet (suffix -2, -3, ... on a clash)."""
    base = time.strftime(TIMESTAMP_FORMAT)
    stamp, n = base, 1
    while spec.run_dir(stamp).exists():
        n += 1
        stamp = f"{base}-{n}"
        if n > 1000:
            raise SubmitError(f"{spec.run_dir(base)}: run directory exists; change `output` in {spec.source}")
    return stamp
