"""Following submitted jobs: status, cancel, wait, and naming a job on the command line.

A job is named by its run directory (made by :func:`hpcdist.batch.submission.submit`, holding
``job.json``) or by its batch job id. The state of a job is read with one batched queue query
per poll (``squeue`` / ``qstat``); only a job that has left the queue is looked up in the
accounting (``sacct``, else SLURM's jobcomp file; ``qacct``). States are normalised to
:data:`hpcdist.batch.STATES`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from hpcdist import commands
from hpcdist.batch import FINAL_STATES, SYSTEMS, JobStatus, get_system, query_states
from hpcdist.batch.record import read_exit_code, read_progress, read_record, write_record
from hpcdist.errors import JobIdError, RunDirError
from hpcdist.paths import RunDir
from hpcdist.exitcodes import ExitCode

__all__ = [
    "Job",
    "EXIT_CODES",
    "resolve_job",
    "exit_code_for",
    "statuses",
    "combined_exit_code",
]

#: ``hpcdist status`` exit codes by state (and, as for every command, 2 usage, 3 batch command failed)
EXIT_CODES: Mapping[str, ExitCode] = {
    "COMPLETED": ExitCode.OK,
    "FAILED": ExitCode.FAILED,
    "CANCELLED": ExitCode.FAILED,
    "TIMEOUT": ExitCode.FAILED,
    "UNKNOWN": ExitCode.UNKNOWN,
    "PENDING": ExitCode.UNFINISHED,
    "RUNNING": ExitCode.UNFINISHED,
}

#: seconds a queue or cancel command may take
QUERY_TIMEOUT = 30.0

def exit_code_for(state: str) -> ExitCode:
    """The ``hpcdist status`` exit code for a normalised state (see :data:`EXIT_CODES`)."""
    return EXIT_CODES.get(state, EXIT_CODES["UNKNOWN"])


def combined_exit_code(states: Iterable[str]) -> ExitCode:
    """The ``hpcdist status`` exit code for several jobs: 10 when any is unfinished, else 1
    when any failed, else 4 when any is unknown, else 0 (all completed)."""
    codes = {exit_code_for(s) for s in states}
    for code in (ExitCode.UNFINISHED, ExitCode.FAILED, ExitCode.UNKNOWN):
        if code in codes:
            return code
    return ExitCode.OK


@dataclass
class Job:
    """A submitted (or dry-run) job and its run directory.

    Attributes:
        job_id: the batch system's id (None for a dry run).
        system: ``slurm`` or ``sge``.
        run_dir: the run directory (None when the job was named by id alone).
        submitted: submission time (seconds since the epoch), if known.
        script: path of the rendered job script, if known.
    """

    job_id: str | None
    system: str
    run_dir: Path | None = None
    submitted: float | None = None
    script: Path | None = None
    record: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_run_dir(cls, path: str | os.PathLike[str]) -> Job:
        """The job recorded in a run directory's ``job.json``.

        Raises:
            RunDirError: when the directory or its record is missing, unreadable or malformed
                (bad JSON, wrong types, a job id not in the system's syntax...).
        """
        run_dir = Path(path).resolve()
        if not run_dir.is_dir():
            raise RunDirError(f"{path}: no such run directory")
        record = read_record(RunDir(run_dir).job, missing=f"{path}: not a run directory (no {RunDir.JOB}; "
                                                                "made by `hpcdist submit`)")
        return cls(
            job_id=record.get("job_id"),
            system=record["system"],
            run_dir=run_dir,
            submitted=record.get("submitted"),
            script=Path(record["script"]) if record.get("script") else None,
            record=record,
        )

    def output_file(self) -> Path | None:
        """Where the batch system writes the job's output (None without a run directory or id)."""
        if self.run_dir is None or self.job_id is None:
            return None
        return get_system(self.system).output_file(self.run_dir, self.job_id)

    @property
    def dry_run(self) -> bool:
        """True when the job was rendered but never submitted."""
        return self.job_id is None

    def _require_id(self, what: str) -> str:
        if self.job_id is None:
            raise RunDirError(f"{self.run_dir}: a dry run was never submitted; nothing to {what}")
        return self.job_id

    def progress(self) -> dict[str, Any] | None:
        """The run's progress (``progress.json`` in the run directory) when it is complete:
        ``{"done", "failed", "running", "total": int, "updated": ISO 8601 text}``; else None
        (no file yet, or one that is partial or malformed)."""
        if self.run_dir is None:
            return None
        return read_progress(RunDir(self.run_dir).progress)

    def status(self) -> JobStatus:
        """The job's state now (one queue query; accounting only once it left the queue).

        Raises:
            CommandError: when the batch system's command fails.
        """
        return statuses([self])[0]

    def _follow(self) -> None:
        # a run continued by `submit --resume` (or a job that resubmitted itself) names its
        # newest job in job.json: follow it
        if self.run_dir is None:
            return
        try:
            newest = Job.from_run_dir(self.run_dir)
        except RunDirError:
            return
        if newest.job_id is not None and newest.job_id != self.job_id:
            self.job_id, self.system, self.submitted = newest.job_id, newest.system, newest.submitted
            self.script, self.record = newest.script, newest.record

    def cancel(self) -> None:
        """Ask the batch system to cancel the job (and note the request in ``job.json``).

        The request is noted first, so a job script that reacts to the cancellation (Grid
        Engine's -notify signal looks like the walltime warning) does not resubmit itself.

        Raises:
            NothingCancelled: the batch system knows no such job, or it had already ended.
            CommandError: with the batch system's own message when it refuses.
        """
        self._follow()
        job_id = self._require_id("cancel")
        system = get_system(self.system)
        argv = system.cancel_argv(job_id)  # checks the id's syntax first
        noted = self.run_dir is not None and RunDir(self.run_dir).job.exists()
        if noted:
            assert self.run_dir is not None
            self.record["cancel_requested"] = time.time()
            write_record(self.run_dir, self.record)
        try:
            result = commands.run_command(argv, timeout=QUERY_TIMEOUT, check=False)
            problem = system.cancel_problem(result)
            if problem is not None:
                raise problem
        except BaseException:
            if noted:
                assert self.run_dir is not None
                self.record.pop("cancel_requested", None)
                write_record(self.run_dir, self.record)
            raise

    def wait(
        self, timeout: float | None = None, poll: float = 0.5, max_poll: float = 10.0, unknown_grace: float = 30.0
    ) -> JobStatus:
        """Poll until the job reaches a final state, backing off from ``poll`` to ``max_poll`` s.

        Args:
            timeout: give up after this many seconds (None: wait for ever).
            poll: first polling interval in seconds; it grows by half each poll.
            max_poll: longest polling interval.
            unknown_grace: how long a job may stay UNKNOWN (gone from the queue, no
                accounting record yet) before that is returned as its final answer.

        Returns:
            The final status (or UNKNOWN after ``unknown_grace``).

        Raises:
            TimeoutError: when ``timeout`` passes first.
        """
        start = time.monotonic()
        unknown_since: float | None = None
        interval = poll
        while True:
            st = self.status()
            now = time.monotonic()
            if st.state in FINAL_STATES:
                return st
            if st.state == "UNKNOWN":
                unknown_since = now if unknown_since is None else unknown_since
                if now - unknown_since >= unknown_grace:
                    return st
            else:
                unknown_since = None
            if timeout is not None and now - start + interval > timeout:
                raise TimeoutError(f"job {self.job_id} still {st.state} after {timeout:g} s")
            time.sleep(interval)
            interval = min(interval * 1.5, max(max_poll, poll))


def statuses(job_list: list[Job]) -> list[JobStatus]:
    """The status of every job: one queue query (and one accounting lookup) per batch system.

    Raises:
        CommandError: when a batch command fails.
    """
    by_system: dict[str, list[str]] = {}
    submitted: dict[str, float] = {}
    for job in job_list:
        job._follow()
        job_id = job._require_id("query")
        by_system.setdefault(job.system, []).append(job_id)
        if isinstance(job.submitted, (int, float)):
            submitted[job_id] = min(job.submitted, submitted.get(job_id, job.submitted))
    answers = {system: query_states(system, ids, timeout=QUERY_TIMEOUT, submitted=submitted)
               for system, ids in by_system.items()}
    out = []
    for job in job_list:
        assert job.job_id is not None
        st = dataclasses.replace(answers[job.system][job.job_id])
        if st.state in ("UNKNOWN", "FAILED") and job.record.get("cancel_requested"):
            # a cancelled job that never started has no accounting record, and one that
            # handled the warning signal may end with its own non-zero status
            st.state, st.reason = "CANCELLED", st.reason or "cancelled with hpcdist cancel"
        if st.exit_code is None and st.state in FINAL_STATES and job.run_dir is not None:
            st.exit_code = read_exit_code(job.run_dir)
        st.progress = job.progress()
        out.append(st)
    return out


# --- naming a job on the command line ---------------------------------------------------------


def resolve_job(target: str | None, system: str | None = None) -> Job:
    """The job named by a run directory or a job id (``None``: the current directory).

    Args:
        target: a run directory made by :func:`hpcdist.batch.submission.submit`, or a batch job id.
        system: the batch system of a bare job id (``--scheduler``; default: the one installed here).

    Raises:
        RunDirError: when ``target`` is neither, or the batch system cannot be told.
    """
    path = Path(target) if target is not None else Path.cwd()
    if target is None or path.is_dir() or not re.fullmatch(r"[\d._+]+", target):
        if target is not None and not path.exists():
            raise RunDirError(f"{target}: no such run directory, and not a job id "
                              "(SLURM: 42, 42_7 or 42+1; Grid Engine: 27 or 27.3)")
        return Job.from_run_dir(path)
    if system is None:
        found = [name for name, cls in SYSTEMS.items() if shutil.which(cls.queue_command)]
        if len(found) != 1:
            raise RunDirError(
                f"job id {target}: cannot tell the batch system "
                f"({'both SLURM and Grid Engine' if found else 'neither squeue nor qstat'} found); "
                "pass --scheduler slurm or --scheduler sge"
            )
        system = found[0]
    if system not in SYSTEMS:
        raise RunDirError(f"--scheduler {system}: expected {' or '.join(SYSTEMS)}")
    try:
        get_system(system).check_job_id(target, "job id")
    except JobIdError as exc:
        raise RunDirError(str(exc)) from None
    return Job(job_id=target, system=system)
