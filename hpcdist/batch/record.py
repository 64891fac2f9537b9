"""The files of a run directory that follow its batch jobs: the job record (``job.json``),
the progress the run reports and the exit status its script writes.

``job.json`` holds the batch system, the newest job's id, submission time and script, the
history of the run's jobs under ``jobs`` (after ``submit --resume`` or a resubmission),
``resubmits`` and ``cancel_requested``. Every read checks what hpcdist relies on (types, job
id syntax), so a tampered record never reaches a batch command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from hpcdist.batch import SYSTEMS, get_system
from hpcdist.errors import JobIdError, RunDirError
from hpcdist.paths import RunDir, write_json

__all__ = ["read_record", "write_record", "read_progress", "read_exit_code", "PROGRESS_KEYS", "MAX_RECORD_BYTES"]

#: the keys of progress.json and their types
PROGRESS_KEYS = {"done": int, "failed": int, "running": int, "total": int, "updated": str}
#: the largest job.json read
MAX_RECORD_BYTES = 1 << 20


def write_record(run_dir: Path, record: Mapping[str, Any]) -> None:
    """Write ``record`` as the run directory's ``job.json`` (atomically)."""
    write_json(RunDir(run_dir).job, dict(record))


def read_exit_code(run_dir: Path) -> int | None:
    """The exit status the job script wrote into the run directory, if any."""
    try:
        return int(RunDir(run_dir).exit_code.read_text().strip())
    except (OSError, ValueError):
        return None


def read_progress(path: Path) -> dict[str, Any] | None:
    """``progress.json`` when complete and well formed, else None (see :meth:`hpcdist.batch.jobs.Job.progress`)."""
    try:
        if path.stat().st_size > 64 << 10:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    for key, kind in PROGRESS_KEYS.items():
        value = data.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            return None
    return {k: data[k] for k in PROGRESS_KEYS}


def read_record(path: Path, missing: str | None = None) -> dict[str, Any]:
    """A ``job.json`` read and checked: every field hpcdist reads has its type, every job id
    is in its system's syntax (a tampered ``"job_id": "--me"`` never reaches scancel).

    Args:
        path: the job.json file.
        missing: the message when the file does not exist (default: a generic one).

    Raises:
        RunDirError: one line naming the file and the key.
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_RECORD_BYTES + 1)
    except FileNotFoundError:
        raise RunDirError(missing or f"{path}: no such job record") from None
    except OSError as exc:
        raise RunDirError(f"{path}: cannot read the job record: {exc.strerror or exc}") from None
    if len(raw) > MAX_RECORD_BYTES:
        raise RunDirError(f"{path}: larger than {MAX_RECORD_BYTES} bytes; not a job record made by hpcdist")
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RunDirError(f"{path}: not valid JSON ({str(exc).splitlines()[0][:120]})") from None
    except RecursionError:
        raise RunDirError(f"{path}: nested too deeply; not a job record made by hpcdist") from None
    if not isinstance(record, dict):
        raise RunDirError(f"{path}: not a job record (expected an object with system, job_id, submitted, script)")
    system = record.get("system")
    if not isinstance(system, str) or system not in SYSTEMS:
        expected = " or ".join(f'"{name}"' for name in SYSTEMS)
        raise RunDirError(f"{path}: system: expected {expected}, got {str(system)[:40]!r}")
    checker = get_system(system)

    def check(entry: dict[str, Any], where: str) -> None:
        for key, kinds in (("submitted", (int, float)), ("script", (str,)), ("cancel_requested", (int, float))):
            value = entry.get(key)
            if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
                raise RunDirError(f"{path}: {where}{key}: wrong type ({type(value).__name__})")
        job_id = entry.get("job_id")
        if "job_id" not in entry and not entry.get("dry_run"):
            raise RunDirError(f"{path}: {where}job_id: missing (expected the batch system's job id)")
        if job_id is not None:
            try:
                checker.check_job_id(job_id, f"{path}: {where}job_id")
            except JobIdError as exc:
                raise RunDirError(str(exc)) from None

    check(record, "")
    history = record.get("jobs")
    if history is not None:
        if not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
            raise RunDirError(f"{path}: jobs: expected a list of job entries")
        for i, entry in enumerate(history):
            check(entry, f"jobs[{i}].")
    resubmits = record.get("resubmits", 0)
    if not isinstance(resubmits, int) or isinstance(resubmits, bool) or resubmits < 0:
        raise RunDirError(f"{path}: resubmits: expected a whole number, got {str(resubmits)[:40]!r}")
    return record
