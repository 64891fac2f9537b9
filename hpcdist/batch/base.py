"""What every batch system defines (:class:`BatchSystem`) and the job states they map to.

A batch system is one subclass of :class:`BatchSystem` in its own module (``slurm.py``,
``sge.py``) and one line in :data:`hpcdist.batch.SYSTEMS`. It owns everything particular to
the system: the directive lines of its job script, the shell word for the granted ranks, the
argv of its submit and cancel commands and the parsing of their output, the syntax of its job
ids, the queue and accounting queries and their parsing, and the mapping of its states to
:data:`STATES`. Commands run through :func:`hpcdist.commands.run_command`.
"""

from __future__ import annotations

import re
import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from hpcdist import commands
from hpcdist.errors import CommandError, HpcdistError, JobIdError, NothingCancelled, RenderError, SubmitError
from hpcdist.spec.keys import DIRECTIVE_PATH_PATTERN

if TYPE_CHECKING:
    from hpcdist.spec.model import JobSpec

__all__ = ["BatchSystem", "JobStatus", "STATES", "FINAL_STATES", "q", "q_value", "directive_path",
           "command_failed"]

#: normalised job states
STATES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "UNKNOWN")
#: states a job never leaves
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"})

# characters allowed in a path that appears in a batch directive: the spec's rule (validation
# checks the run directory with it too)
_DIRECTIVE_PATH = re.compile(DIRECTIVE_PATH_PATTERN)


@dataclass
class JobStatus:
    """Where a job is.

    Attributes:
        job_id: the batch system's id.
        state: one of :data:`STATES`.
        raw_state: the batch system's own word for it (``CD``, ``qw``, ``failed 37`` ...).
        exit_code: the job's exit status once finished, if known.
        reason: why it is pending, or how it ended, when the batch system says.
        source: which command told (squeue, sacct, jobcomp, qstat, qacct).
        progress: the run's own ``progress.json``, if any (filled in by :class:`hpcdist.batch.jobs.Job`).
    """

    job_id: str
    state: str
    raw_state: str = ""
    exit_code: int | None = None
    reason: str = ""
    source: str = ""
    progress: dict[str, Any] | None = None


def q(value: object) -> str:
    """Shell-quote one word."""
    return shlex.quote(str(value))


def q_value(value: object) -> str:
    """Shell-quote the value of an assignment: like :func:`q`, but ``=`` is quoted too
    (``X==`` is valid bash, yet reads like a typo to readers and shellcheck)."""
    text = str(value)
    return q(text) if "=" not in text or q(text) != text else "'" + text + "'"


def directive_path(path: Path, what: str, forbidden: str = "") -> str:
    """``path`` as text for a batch directive, refused when it holds characters the batch
    system's directive parser could misread (spaces, quotes, $, ...) or ``forbidden`` ones."""
    text = str(path)
    bad = next((c for c in forbidden if c in text), None)
    if not _DIRECTIVE_PATH.fullmatch(text) or bad:
        allowed = "".join(c for c in "_./+@%:,=-" if c not in forbidden)
        raise RenderError(
            f"{what} {text!r} contains characters that cannot appear in a batch directive "
            f"(allowed: letters, digits and {' '.join(allowed)}); choose another output directory"
        )
    return text


def command_failed(result: commands.CommandResult) -> CommandError:
    """The error for a batch command that exited non-zero, with its own message."""
    return CommandError(f"{result.argv[0]} failed (exit {result.returncode}): {result.tail()}")


class BatchSystem(ABC):
    """One batch system: its job script's directives, its commands and their output.

    Subclasses set the class attributes below and implement the abstract methods.
    """

    #: the name in specs, job records and ``--scheduler``
    name: ClassVar[str] = ""
    #: the built-in template in ``jobscripts/``
    template_name: ClassVar[str] = ""
    #: a job id of this system, in full (digits and the system's array/task suffixes)
    job_id_pattern: ClassVar[str] = r"\d+"
    job_id_help: ClassVar[str] = "digits"
    #: the batch output file in the run directory, ``{id}`` for the job id
    output_name: ClassVar[str] = "{id}.out"
    #: directive options hpcdist sets itself, refused in ``resources.directives``
    reserved_options: ClassVar[tuple[str, ...]] = ()
    #: whether a short option takes its value attached (``-Jname``), so ``-J...`` is ``-J``
    attached_short_values: ClassVar[bool] = False
    #: the environment variable holding the id of the job a script runs in
    job_id_variable: ClassVar[str] = ""
    #: the queue command: where it is installed, this batch system is
    queue_command: ClassVar[str] = ""

    # -- the job script ---------------------------------------------------------------------

    @abstractmethod
    def directives(self, spec: JobSpec, run_dir: Path) -> list[str]:
        """The batch directive lines (``#SBATCH ...`` / ``#$ ...``) of ``spec`` writing into ``run_dir``."""

    @abstractmethod
    def ranks_word(self, spec: JobSpec) -> str:
        """The shell word for the number of ranks the job was granted (for mpiexec -n)."""

    def warning_timer(self, spec: JobSpec) -> str:
        """Shell lines that arrange the walltime warning inside the script (default: none)."""
        return ""

    def check(self, spec: JobSpec) -> None:
        """Raise :class:`RenderError` for specs this system cannot run (the rules of
        :mod:`hpcdist.spec.rules`, which validation applies to the spec's own ``scheduler``)."""
        problems = spec.system_problems(self.name)
        if problems:
            raise RenderError(f"{spec.source}: " + f"\n{spec.source}: ".join(problems))

    # -- job ids ------------------------------------------------------------------------------

    def check_job_id(self, job_id: object, origin: str = "job id") -> str:
        """``job_id`` as text when it is in this system's id syntax (so never an option).

        Args:
            job_id: the id to check (from the command line, job.json, or sbatch/qsub output).
            origin: where it came from, for the message.

        Raises:
            JobIdError: naming ``origin``.
        """
        if not isinstance(job_id, str) or len(job_id) > 40 or not re.fullmatch(self.job_id_pattern, job_id):
            shown = repr(job_id)[:60]
            raise JobIdError(f"{origin}: {shown} is not a {self.name} job id ({self.job_id_help})")
        return job_id

    def output_file(self, run_dir: Path, job_id: str) -> Path:
        """Where the job's standard output (and error) goes."""
        return run_dir / self.output_name.format(id=job_id)

    # -- commands -----------------------------------------------------------------------------

    @abstractmethod
    def submit_argv(self, script_path: str | Path) -> list[str]:
        """The command that submits ``script_path`` and prints only the job id."""

    @abstractmethod
    def parse_job_id(self, stdout: str) -> str:
        """The job id in the output of :meth:`submit_argv` (raises SubmitError without one)."""

    @abstractmethod
    def cancel_argv(self, job_id: str) -> list[str]:
        """The command that cancels ``job_id``."""

    def submit(self, script: Path, timeout: float, env: dict[str, str] | None = None) -> str:
        """Submit ``script``; the job id.

        Raises:
            SubmitError: the batch system rejected the job; the message is its own.
        """
        argv = self.submit_argv(script)
        result = commands.run_command(argv, timeout=timeout, check=False, env=env)
        if result.returncode != 0:
            raise SubmitError(f"{argv[0]} rejected the job (exit {result.returncode}): {result.tail()}")
        return self.parse_job_id(result.stdout)

    def cancel_problem(self, result: commands.CommandResult) -> HpcdistError | None:
        """What went wrong in the output of :meth:`cancel_argv`, or None when the job was cancelled."""
        text = (result.stderr + "\n" + result.stdout).strip()
        gone = ("Invalid job id", "already completing or completed", "does not exist", "not found")
        if any(g in text for g in gone):
            lines = [ln.strip() for ln in text.splitlines() if "error" in ln.lower() or "denied" in ln.lower()]
            detail = " / ".join(lines[-3:]) or result.tail()
            return NothingCancelled(f"nothing cancelled: {detail}")
        if result.returncode != 0:
            return command_failed(result)
        return None

    # -- where jobs are -----------------------------------------------------------------------

    @abstractmethod
    def query(self, job_ids: list[str], timeout: float, submitted: dict[str, float]) -> dict[str, JobStatus]:
        """The status of every job of ``job_ids`` (already checked): one queue query, and
        accounting lookups for the jobs missing from it.

        Args:
            job_ids: the jobs, each once.
            timeout: seconds each command may take.
            submitted: submission times (seconds since the epoch) of the jobs that have one.

        Raises:
            CommandError: when a batch command fails.
        """

    def allocation(self, environ: Mapping[str, str]) -> dict[str, Any] | None:
        """``{"system", "job_id", "nodes"}`` when ``environ`` is that of a job of this system, else None."""
        return None

    # -- a job script resubmitting its run ----------------------------------------------------

    def is_job_variable(self, name: str) -> bool:
        """Whether the environment variable ``name`` describes the job a script runs in (it must
        not reach the job that script submits)."""
        return False

    def being_deleted(self, job_id: str, timeout: float) -> bool:
        """Whether ``job_id`` is being deleted while its script runs (then it must not resubmit)."""
        return False
