"""Every exit status of the ``hpcdist`` command, in one table.

Each command returns a few of these: ``hpcdist run SPEC`` the pipeline statuses
(:data:`PIPELINE`), ``hpcdist status`` one per job state (``batch.jobs.EXIT_CODES``), and any
command an :class:`~hpcdist.errors.HpcdistError`'s ``exit_code``. A number has one member; where
two commands give it two readings (1 and 4), the member's meaning names both: no command can
return both readings, so a caller always knows which one it got.
"""

from __future__ import annotations

import os
import re
from enum import IntEnum
from typing import Iterable, Mapping

from hpcdist.paths import atomic_write, status_file

__all__ = ["ExitCode", "PIPELINE", "table", "write_status", "read_status", "clear_status", "run_status"]


class ExitCode(IntEnum):
    """An exit status of ``hpcdist``; ``meaning`` is its one-line description."""

    meaning: str

    def __new__(cls, value: int, meaning: str) -> ExitCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    def __str__(self) -> str:  # "5", not "ExitCode.WALLTIME" (as on Python >= 3.11): job scripts print it
        return str(self.value)

    __format__ = int.__format__

    OK = 0, "every task done (or reused from the run directory)"
    FAILED = 1, "an error (one line on stderr); status: a job failed, was cancelled or timed out"
    SPEC = 2, "the spec or the command line is invalid (nothing ran)"
    BATCH_COMMAND = 3, "a batch command (sbatch, qstat, ...) failed, was rejected or timed out"
    UNKNOWN = 4, ("status, cancel: the job is unknown to the batch system (or over); "
                  "exec, run: a worker was lost or the transport failed")
    WALLTIME = 5, "stopped at the walltime warning or end time; resume to finish"
    TASKS_FAILED = 6, "some tasks failed (after their retries) or were skipped because of it"
    UNFINISHED = 10, "status: a job is still pending or running"
    INTERNAL = 70, "an error inside hpcdist, not in a task"
    IO_ERROR = 74, "the run directory could not be written (disk full, quota); free space, then resume"
    TIMEOUT = 124, ("`hpcdist run --timeout` ran out (set by the launcher, as coreutils timeout; a pipeline's "
                    "manifest says `interrupted`)")
    INTERRUPTED = 130, "stopped by Ctrl-C or SIGTERM; finished results kept, resume to finish"


#: the statuses a pipeline run (``hpcdist run SPEC``, rank 0 in a world) ends with
PIPELINE = frozenset({ExitCode.OK, ExitCode.SPEC, ExitCode.WALLTIME, ExitCode.TASKS_FAILED, ExitCode.INTERNAL,
                      ExitCode.IO_ERROR, ExitCode.INTERRUPTED})


def table(codes: Iterable[ExitCode] | None = None) -> str:
    """The exit statuses (all, or ``codes``) as a Markdown table, as the docs print it."""
    codes = None if codes is None else frozenset(codes)
    rows = ["| status | name | meaning |", "| --- | --- | --- |"]
    rows += [f"| {c.value} | {c.name.lower()} | {c.meaning} |" for c in ExitCode if codes is None or c in codes]
    return "\n".join(rows) + "\n"


# The run's status comes from its results, not from the launcher: when a worker dies, srun
# reports 137 (Hydra and mpirun non-zero too) even though rank 0 finished every task. Rank 0
# writes the status it ends with into the state directory (HPCDIST_STATE_DIR, which
# ``hpcdist run`` and the job scripts set); they exit with it, and with the launcher's own status
# only when there is no such file (rank 0 itself died).


def _state_dir(environ: Mapping[str, str] | None) -> str | None:
    return (os.environ if environ is None else environ).get("HPCDIST_STATE_DIR") or None


def write_status(code: int, environ: Mapping[str, str] | None = None) -> None:
    """Rank 0: note ``code`` as the run's status (atomically; nothing without a state directory)."""
    state_dir = _state_dir(environ)
    if state_dir is None:
        return
    try:
        atomic_write(status_file(state_dir), f"{int(code)}\n".encode(), fsync=False)
    except OSError:
        pass  # the launcher's status then stands


def clear_status(environ: Mapping[str, str] | None = None) -> None:
    """Before a launch: drop a status left by an earlier run in the same state directory."""
    state_dir = _state_dir(environ)
    if state_dir is not None:
        try:
            os.unlink(status_file(state_dir))
        except OSError:
            pass


def read_status(state_dir: str | os.PathLike[str]) -> int | None:
    """The status rank 0 wrote into ``state_dir``, or None (no file, or not a status)."""
    try:
        text = status_file(state_dir).read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        return None
    return int(text) if re.fullmatch(r"[0-9]{1,3}", text) and int(text) < 256 else None


def run_status(launcher_status: int, state_dir: str | os.PathLike[str] | None) -> int:
    """The run's exit status: rank 0's (see :func:`write_status`) when it wrote one, else the launcher's."""
    if state_dir is None:
        return launcher_status
    own = read_status(state_dir)
    return launcher_status if own is None else own
