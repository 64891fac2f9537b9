"""The run directory: every file name in it, and the one way to write a file there (atomically).

Layout::

    RUN_DIR/spec.yaml              the resolved spec
    RUN_DIR/job.sh                 the rendered batch script (job-2.sh, job-3.sh ... for the jobs continuing it)
    RUN_DIR/job.json               the job record: system, job id, history of (re)submissions, cancel_requested
    RUN_DIR/exit_code              the job script's exit status (written by the script itself)
    RUN_DIR/progress.json          done/failed/running/total and when (for ``hpcdist status --watch``)
    RUN_DIR/manifest.json          per task: status, attempts, rank, host, times, bytes, error, key
    RUN_DIR/objects/KEY.EXT        every finished task's result (the cache), KEY.meta.json beside it
    RUN_DIR/outputs/NAME.EXT       the saved outputs (NAME/00000.EXT ... for a mapped task)
    RUN_DIR/output_hash            sha256 over outputs/ (also in the manifest)
    RUN_DIR/logs/                  rank 0's log (rank-0.log) and one log per worker process
    RUN_DIR/logs/tracebacks/       the full traceback of each failed task (NAME.txt, NAME.I.txt)
    RUN_DIR/ranks/rank-N.task      what rank N is doing (read after a crash to name the task)
    RUN_DIR/logs/rank-0.pid        the pid of rank 0 while a pipeline runs
    RUN_DIR/trace/rank-N.trace     rank N's trace events (see hpcdist/trace/format.py)
    RUN_DIR/trace.json             the ranks' traces merged (Chrome Trace Event JSON, ``hpcdist trace``)
    RUN_DIR/.lock, .lock-world     held by the launcher and by the world (see pipeline/lock.py)

Nothing else in hpcdist spells one of these names.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

__all__ = ["RunDir", "atomic_write", "write_json", "rank_task_file", "rank_task_files", "status_file", "trace_file",
           "trace_files"]


@dataclass(frozen=True)
class RunDir:
    """The paths of one run directory (nothing is created by building it)."""

    root: Path

    SPEC = "spec.yaml"
    SCRIPT = "job.sh"
    JOB = "job.json"
    EXIT_CODE = "exit_code"
    PROGRESS = "progress.json"
    MANIFEST = "manifest.json"
    OBJECTS = "objects"
    OUTPUTS = "outputs"
    HASH = "output_hash"
    LOGS = "logs"
    TRACEBACKS = "logs/tracebacks"
    RANKS = "ranks"
    PID = "logs/rank-0.pid"
    RANK0_LOG = "logs/rank-0.log"
    TRACE = "trace"
    TRACE_JSON = "trace.json"
    LAUNCHER_LOCK = ".lock"
    WORLD_LOCK = ".lock-world"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def spec(self) -> Path:
        return self.root / self.SPEC

    @property
    def script(self) -> Path:
        return self.root / self.SCRIPT

    @property
    def job(self) -> Path:
        return self.root / self.JOB

    def job_script(self, number: int) -> Path:
        """The script of the run's ``number``-th batch job (``job-2.sh`` ...; the first is :attr:`script`)."""
        return self.root / f"job-{number}.sh"

    @property
    def exit_code(self) -> Path:
        return self.root / self.EXIT_CODE

    @property
    def progress(self) -> Path:
        return self.root / self.PROGRESS

    @property
    def manifest(self) -> Path:
        return self.root / self.MANIFEST

    @property
    def objects(self) -> Path:
        return self.root / self.OBJECTS

    @property
    def outputs(self) -> Path:
        return self.root / self.OUTPUTS

    @property
    def output_hash(self) -> Path:
        return self.root / self.HASH

    @property
    def logs(self) -> Path:
        return self.root / self.LOGS

    @property
    def tracebacks(self) -> Path:
        return self.root / self.TRACEBACKS

    @property
    def ranks(self) -> Path:
        return self.root / self.RANKS

    @property
    def pid(self) -> Path:
        return self.root / self.PID

    @property
    def rank0_log(self) -> Path:
        return self.root / self.RANK0_LOG

    @property
    def trace(self) -> Path:
        """The directory of the per-rank trace files (``HPCDIST_TRACE_DIR`` of a run)."""
        return self.root / self.TRACE

    @property
    def trace_json(self) -> Path:
        return self.root / self.TRACE_JSON

    def is_run_dir(self) -> bool:
        """Whether something of a run (a job record, a manifest or stored results) is here."""
        return any(p.exists() for p in (self.job, self.manifest, self.objects))

    def ensure_layout(self) -> None:
        """Create the directory and its sub-folders (idempotent)."""
        for sub in (self.objects, self.logs):
            sub.mkdir(parents=True, exist_ok=True)


def rank_task_file(state_dir: str | os.PathLike[str], rank: int) -> Path:
    """The file in which rank ``rank`` notes the task it runs (``rank-N.task``)."""
    return Path(state_dir) / f"rank-{rank}.task"


def status_file(state_dir: str | os.PathLike[str]) -> Path:
    """The file in which rank 0 writes the run's own exit status (``status``)."""
    return Path(state_dir) / "status"


def warning_file(state_dir: str | os.PathLike[str]) -> Path:
    """The file a job script (or ``hpcdist run SPEC``) creates before it forwards the walltime
    warning (SIGUSR1) to the ranks (``walltime-warning``): a SIGUSR1 without it is not the warning."""
    return Path(state_dir) / "walltime-warning"


def rank_task_files(state_dir: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(rank, file)`` of every rank's task file in ``state_dir``, by rank."""
    found = []
    for path in Path(state_dir).glob("rank-*.task"):
        number = path.stem.split("-", 1)[1]
        if number.isdigit():
            found.append((int(number), path))
    return sorted(found)


def trace_file(trace_dir: str | os.PathLike[str], rank: int) -> Path:
    """Rank ``rank``'s trace file in ``trace_dir`` (``rank-N.trace``)."""
    return Path(trace_dir) / f"rank-{rank}.trace"


def trace_files(trace_dir: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(rank, file)`` of every rank's trace file in ``trace_dir``, by rank."""
    found = []
    for path in Path(trace_dir).glob("rank-*.trace"):
        number = path.stem.split("-", 1)[1]
        if number.isdigit():
            found.append((int(number), path))
    return sorted(found)


def atomic_write(path: Path, data: bytes | Iterable[bytes], fsync: bool = True) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place.

    ``fsync`` also survives a machine crash; without it a crashed *process* still never
    leaves a partial file (results skip it: a fsync per result costs milliseconds).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in [data] if isinstance(data, (bytes, bytearray, memoryview)) else data:
                fh.write(chunk)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(path: Path, data: Any, fsync: bool = True) -> None:
    """``data`` as indented JSON, atomically."""
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode(), fsync)
