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

from hpcdist.errors import RunDirError, SpecError, SubmitError
from hpcdist.batch.jobs import (JOB_FILE, QUERY_TIMEOUT, SCRIPT_FILE, SPEC_FILE, Job, _write_json, spec_with,
                          submit_script)
from hpcdist.batch.query import query_states

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
    from hpcdist.batch import get_system

    directory = _run_directory(run_dir)
    record = _read_record(directory)
    if spec is None:
        if not (directory / SPEC_FILE).is_file():
            raise RunDirError(f"{run_dir}: no {SPEC_FILE} in the run directory; name the spec: "
                              f"hpcdist submit SPEC --resume {run_dir}")
        spec = directory / SPEC_FILE
    spec = spec_with(spec, scheduler, overrides)
    if spec.program.parsed is None:
        raise SpecError(f"{spec.source}: program: runs a script, not a pipeline; there is nothing to resume")
    if spec.scheduler not in ("slurm", "sge"):
        raise SpecError(f"{spec.source}: scheduler: {spec.scheduler!r} cannot be submitted; set scheduler: "
                        "slurm or sge, or pass --scheduler (to resume locally: hpcdist run SPEC --resume RUN_DIR)")
    if automatic:
        _check_resubmission(directory, record, spec.program.parsed.resubmit)
    else:
        _check_not_running(directory, record)

    from hpcdist.batch.jobs import spec_to_yaml
    from hpcdist.paths import atomic_write

    system = get_system(spec.scheduler)
    script_text = system.render(spec, directory)
    history = _history(record)
    if not history and not (directory / SCRIPT_FILE).exists():
        script = directory / SCRIPT_FILE  # the run's first batch job (the run dir came from `hpcdist run`)
    else:
        number = max(len(history) + 1, 2)
        while (directory / f"job-{number}.sh").exists():
            number += 1
        script = directory / f"job-{number}.sh"
    spec_path = directory / SPEC_FILE
    old_spec = spec_path.read_bytes() if spec_path.is_file() else None
    new_spec = spec_to_yaml(spec).encode()
    try:
        if new_spec != old_spec:
            atomic_write(spec_path, new_spec)
        script.write_text(script_text, encoding="utf-8")
        script.chmod(0o755)
        job_id = submit_script(system, script, env=resubmit_env() if automatic else None)
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
        _write_json(directory / JOB_FILE, record)
    except OSError as exc:
        raise SubmitError(f"job {job_id} was submitted but {directory / JOB_FILE} could not be written ({exc}); "
                          f"follow it with: hpcdist status {job_id} --scheduler {spec.scheduler}") from exc
    return Job.from_run_dir(directory)


def resubmit_env() -> dict[str, str]:
    """This process's environment without the current job's SLURM_* variables.

    sbatch hands the submitting environment to the job (``--export=ALL``); a job submitting
    its successor must not pass on its own job id or end time.
    """
    return {k: v for k, v in os.environ.items()
            if not (k.startswith("SLURM_") and k != "SLURM_CONF") and k not in _JOB_VARIABLES}


def _run_directory(run_dir: str | os.PathLike[str]) -> Path:
    directory = Path(run_dir).resolve()
    if not directory.is_dir():
        raise RunDirError(f"--resume {run_dir}: no such run directory")
    if not any((directory / name).exists() for name in (JOB_FILE, "manifest.json", "objects")):
        raise RunDirError(f"--resume {run_dir}: not a pipeline run directory (no {JOB_FILE}, manifest.json "
                          "or objects/; made by hpcdist submit or hpcdist run)")
    return directory


def _read_record(directory: Path) -> dict[str, Any]:
    from hpcdist.batch.jobs import read_record

    path = directory / JOB_FILE
    if not path.exists():
        return {}  # a run directory made by `hpcdist run`: its first batch job
    return read_record(path)


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
    current = os.environ.get("SLURM_JOB_ID") or os.environ.get("JOB_ID")
    if current and record.get("job_id") not in (None, current):
        raise SubmitError(f"{directory}: not resubmitted: job {current} is no longer the run's newest job "
                          f"({record.get('job_id')} continues it)")
    if current and record.get("system") == "sge":
        # a plain qdel sends -notify's USR2 first, which the script takes for the walltime warning
        st = query_states("sge", [current], timeout=QUERY_TIMEOUT)[current]
        if st.source == "qstat" and "d" in st.raw_state:
            raise SubmitError(f"{directory}: not resubmitted: job {current} is being deleted (qdel)")


def _check_not_running(directory: Path, record: dict[str, Any]) -> None:
    job_id, system = record.get("job_id"), record.get("system")
    if job_id is None or system not in ("slurm", "sge"):
        return
    state = query_states(system, [job_id], timeout=QUERY_TIMEOUT)[job_id].state
    if state in ("PENDING", "RUNNING"):
        raise RunDirError(f"--resume {directory}: job {job_id} is still {state} there; "
                          f"wait for it or cancel it first (hpcdist cancel {directory})")
