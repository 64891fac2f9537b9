"""Continuing a pipeline run in its existing run directory with a new batch job.

``hpcdist submit [SPEC] --resume RUN_DIR`` (and ``hpcdist.submit(spec, resume=RUN_DIR)``)
renders a new script next to the earlier ones (``job-2.sh``, ``job-3.sh``, ...) and submits
it; the job runs the pipeline in RUN_DIR again, reusing every stored result. ``job.json``
keeps the history of the run's jobs under ``jobs`` and names the newest at its top level, so
``hpcdist status RUN_DIR`` and ``hpcdist cancel RUN_DIR`` follow the newest job.

A job script rendered from a spec with ``program.pipeline.resubmit: N`` calls this with
``automatic=True`` when the pipeline stopped at the walltime (status 5): the run is
submitted again at most N times in all, counted in ``job.json`` (``resubmits``).

A rejected submission leaves the run directory as it was: the new script is removed and
the previous ``spec.yaml`` is put back.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterable

from hpcdist.batch import SYSTEMS, get_system, query_states, render
from hpcdist.batch.jobs import QUERY_TIMEOUT, Job
from hpcdist.batch.prepare import SUBMIT_TIMEOUT, require_submittable, spec_with
from hpcdist.batch.record import read_record, write_record
from hpcdist.errors import RunDirError, SpecError, SubmitError
from hpcdist.paths import RunDir, atomic_write
from hpcdist.spec.dump import spec_to_yaml

__all__ = ["submit_resume", "resubmit_env"]

#: environment variables that describe the current job and must not reach the next one
_JOB_VARIABLES = ("HPCDIST_JOB_END_TIME",)


def submit_resume(
    spec: Any,
    run_dir: str | os.PathLike[str],
    *,
    scheduler: str | None = None,
    overrides: Iterable[str] = (),
    automatic: bool = False,
) -> Job:
    """Submit a job that continues the pipeline in ``run_dir``.

    Args:
        spec: a :class:`~hpcdist.spec.model.JobSpec`, the path of a spec file, or None for the
            run directory's own resolved ``spec.yaml``.
        run_dir: an existing pipeline run directory (made by ``hpcdist submit`` or ``hpcdist run``).
        scheduler: ``slurm`` or ``sge`` instead of the spec's own.
        overrides: ``key.path=value`` settings applied to the spec.
        automatic: the job script resubmits itself after the walltime status: count it
            against ``program.pipeline.resubmit`` and refuse beyond it, or when this job was
            cancelled or is no longer the run's newest job.

    Returns:
        The new job (:attr:`Job.run_dir` is ``run_dir``).

    Raises:
        RunDirError: ``run_dir`` is not a pipeline run directory, or its newest job still runs.
        SpecError: the spec is invalid or runs a script, not a pipeline.
        SubmitError: the batch system rejected the job, or (automatic) no resubmission is due.
    """
    directory = _run_directory(run_dir)
    paths = RunDir(directory)
    record = _read_record(paths)
    if spec is None:
        if not paths.spec.is_file():
            raise RunDirError(f"{run_dir}: no {RunDir.SPEC} in the run directory; name the spec: "
                              f"hpcdist submit SPEC --resume {run_dir}")
        spec = paths.spec
    spec = spec_with(spec, scheduler, overrides)
    if spec.program.parsed is None:
        raise SpecError(f"{spec.source}: program: runs a script, not a pipeline; there is nothing to resume")
    require_submittable(spec, "to resume locally: hpcdist run SPEC --resume RUN_DIR")
    if automatic:
        _check_resubmission(directory, record, spec.program.parsed.resubmit)
    else:
        _check_not_running(directory, record)

    system = get_system(spec.scheduler)
    script_text = render(spec, spec.scheduler, directory)
    history = _history(record)
    if not history and not paths.script.exists():
        script = paths.script  # the run's first batch job (the run dir came from `hpcdist run`)
    else:
        number = max(len(history) + 1, 2)
        while paths.job_script(number).exists():
            number += 1
        script = paths.job_script(number)
    spec_path = paths.spec
    old_spec = spec_path.read_bytes() if spec_path.is_file() else None
    new_spec = spec_to_yaml(spec).encode()
    try:
        if new_spec != old_spec:
            atomic_write(spec_path, new_spec)
        atomic_write(script, script_text.encode("utf-8"))
        script.chmod(0o755)
        job_id = system.submit(script, SUBMIT_TIMEOUT, env=resubmit_env() if automatic else None)
    except BaseException:
        script.unlink(missing_ok=True)
        if old_spec is None:
            spec_path.unlink(missing_ok=True)
        elif new_spec != old_spec:
            atomic_write(spec_path, old_spec)
        raise
    entry = {"job_id": job_id, "system": spec.scheduler, "submitted": time.time(), "script": str(script),
             "how": "resubmit" if automatic else "resume", "after": record.get("job_id")}
    if automatic:
        entry["reason"] = "walltime"  # the script resubmits only after the walltime status (5)
    record.update({k: entry[k] for k in ("job_id", "system", "submitted", "script")})
    record.setdefault("spec", str(spec.path))
    record.setdefault("name", spec.name)
    record.pop("cancel_requested", None)
    record.pop("dry_run", None)
    record["jobs"] = history + [entry]
    if automatic:
        record["resubmits"] = int(record.get("resubmits", 0)) + 1
    try:
        write_record(directory, record)
    except OSError as exc:
        raise SubmitError(f"job {job_id} was submitted but {paths.job} could not be written ({exc}); "
                          f"follow it with: hpcdist status {job_id} --scheduler {spec.scheduler}") from exc
    return Job.from_run_dir(directory)


def resubmit_env() -> dict[str, str]:
    """This process's environment without the current job's SLURM_* variables.

    sbatch hands the submitting environment to the job (``--export=ALL``); a job submitting
    its successor must not pass on its own job id or end time (each batch system names its
    variables: :meth:`~hpcdist.batch.base.BatchSystem.is_job_variable`).
    """
    systems = [cls() for cls in SYSTEMS.values()]
    return {k: v for k, v in os.environ.items()
            if not any(s.is_job_variable(k) for s in systems) and k not in _JOB_VARIABLES}


def _run_directory(run_dir: str | os.PathLike[str]) -> Path:
    directory = Path(run_dir).resolve()
    if not directory.is_dir():
        raise RunDirError(f"--resume {run_dir}: no such run directory")
    if not RunDir(directory).is_run_dir():
        raise RunDirError(f"--resume {run_dir}: not a pipeline run directory (no {RunDir.JOB}, {RunDir.MANIFEST} "
                          f"or {RunDir.OBJECTS}/; made by hpcdist submit or hpcdist run)")
    return directory


def _read_record(paths: RunDir) -> dict[str, Any]:
    if not paths.job.exists():
        return {}  # a run directory made by `hpcdist run`: its first batch job
    return read_record(paths.job)


def _history(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every job of the run, oldest first (a record from before histories: its one job)."""
    jobs = record.get("jobs")
    if isinstance(jobs, list):
        return list(jobs)
    if record.get("job_id") is None:
        return []
    keys = ("job_id", "system", "submitted", "script")
    return [{**{k: record.get(k) for k in keys}, "how": "submit"}]


def _check_resubmission(directory: Path, record: dict[str, Any], limit: int) -> None:
    done = int(record.get("resubmits", 0))
    if done >= limit:
        raise SubmitError(f"{directory}: not resubmitted: program.pipeline.resubmit allows {limit} and {done} "
                          f"{'was' if done == 1 else 'were'} made; continue with: hpcdist submit --resume {directory}")
    if record.get("cancel_requested"):
        raise SubmitError(f"{directory}: not resubmitted: job {record.get('job_id')} was cancelled (hpcdist cancel)")
    current = next((os.environ[c.job_id_variable] for c in SYSTEMS.values() if os.environ.get(c.job_id_variable)),
                   None)
    if current and record.get("job_id") not in (None, current):
        raise SubmitError(f"{directory}: not resubmitted: job {current} is no longer the run's newest job "
                          f"({record.get('job_id')} continues it)")
    system = record.get("system")
    if current and system in SYSTEMS and get_system(system).being_deleted(current, QUERY_TIMEOUT):
        raise SubmitError(f"{directory}: not resubmitted: job {current} is being deleted (qdel)")


def _check_not_running(directory: Path, record: dict[str, Any]) -> None:
    job_id, system = record.get("job_id"), record.get("system")
    if job_id is None or system not in SYSTEMS:
        return
    state = query_states(system, [job_id], timeout=QUERY_TIMEOUT)[job_id].state
    if state in ("PENDING", "RUNNING"):
        raise RunDirError(f"--resume {directory}: job {job_id} is still {state} there; "
                          f"wait for it or cancel it first (hpcdist cancel {directory})")
