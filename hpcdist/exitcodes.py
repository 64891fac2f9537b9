"""Every exit status of the ``hpcdist`` command, in one table.

Each command returns a few of these: ``hpcdist run SPEC`` the pipeline statuses
(:data:`PIPELINE`), ``hpcdist status`` one per job state (``batch.jobs.EXIT_CODES``), and any
command an :class:`~hpcdist.errors.HpcdistError`'s ``exit_code``. A number has one member; where
two commands give it two readings (1 and 4), the member's meaning names both: no command can
return both readings, so a caller always knows which one it got.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Iterable

__all__ = ["ExitCode", "PIPELINE", "table"]


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
