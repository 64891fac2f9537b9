"""The one exception hierarchy of hpcdist.

Every error hpcdist raises on purpose derives from :class:`HpcdistError`; the CLI turns
those into a one-line message and a non-zero exit status instead of a traceback.
"""

from __future__ import annotations

import concurrent.futures

from hpcdist.exitcodes import ExitCode


class HpcdistError(Exception):
    """Base class of every error hpcdist raises on purpose."""

    #: exit status the CLI uses for this kind of error
    exit_code: ExitCode = ExitCode.FAILED


class SpecError(HpcdistError):
    """The job spec is invalid; the message lists every problem with file:line:column."""

    exit_code = ExitCode.SPEC


class RenderError(HpcdistError):
    """A job script could not be rendered (bad template, unknown placeholder, ...)."""

    exit_code = ExitCode.SPEC


class SubmitError(HpcdistError):
    """The batch system rejected a command; the message carries its own stderr."""

    exit_code = ExitCode.BATCH_COMMAND


class CommandError(SubmitError):
    """An external command (sbatch, qstat, ...) failed, timed out or was not found."""


class JobIdError(HpcdistError):
    """A job id (given, recorded in job.json, or printed by sbatch/qsub) is not in the system's syntax."""

    exit_code = ExitCode.SPEC


class NothingCancelled(HpcdistError):
    """``cancel`` found nothing to cancel: the job is unknown to the batch system or already over."""

    exit_code = ExitCode.UNKNOWN


class RunDirBusy(HpcdistError):
    """Another hpcdist run works in this run directory."""


class RunDirError(HpcdistError):
    """A run directory or job id given on the command line cannot be used."""

    exit_code = ExitCode.SPEC


class TransportError(HpcdistError):
    """The message transport failed or was used wrongly (e.g. an MPI world of size 1)."""

    exit_code = ExitCode.UNKNOWN


class WorkerLost(HpcdistError, concurrent.futures.BrokenExecutor):
    """A worker died while holding data or running a task.

    Also a :class:`concurrent.futures.BrokenExecutor`, as the standard library's pools raise
    when a worker dies.
    """

    exit_code = ExitCode.UNKNOWN


class KilledWorker(WorkerLost):
    """A task was running on ``allowed_failures`` workers that died, so it is not tried again.

    Like dask's ``KilledWorker``: a task that kills every worker it runs on (a segfault, the
    OOM killer, ``os._exit``) fails instead of taking the whole world down one worker at a time.
    Its dependents fail with the same error.

    Args:
        key: The task.
        ranks: The ranks that died while running it, in the order they died.

    Attributes:
        key: The task.
        ranks: The ranks that died while running it.
    """

    def __init__(self, key: str, ranks: tuple[int, ...]) -> None:
        super().__init__(key, tuple(ranks))  # args kept as given: it pickles and unpickles
        self.key = key
        self.ranks = tuple(ranks)

    def __str__(self) -> str:
        n = len(self.ranks)
        workers, rank_word = ("worker", "rank") if n == 1 else ("workers", "ranks")
        listed = ", ".join(map(str, self.ranks))
        return f"task {self.key!r} was running on {n} {workers} that died ({rank_word} {listed}); it is not tried again"


class NoValidWorker(HpcdistError):
    """A task's worker restrictions match no live worker (and other workers are not allowed)."""


class InvalidTransition(HpcdistError):
    """A task was asked to make a transition the table does not allow (a scheduler bug)."""


class DependencyMissing(HpcdistError):
    """A task depends on a key the scheduler does not know (or on itself, through a cycle)."""


class TaskTimeout(HpcdistError):
    """A pipeline task ran longer than its ``timeout``."""


class TaskInterrupted(HpcdistError):
    """A pipeline task was stopped by SIGTERM/SIGINT (a cancel reaching every rank)."""


#: A task was cancelled before it finished: the standard library's own class, so one
#: ``except CancelledError`` catches it from ``result()``, ``gather()`` and concurrent.futures.
CancelledError = concurrent.futures.CancelledError


class RemoteTraceback(Exception):
    """Carries the formatted traceback of an exception raised inside a task.

    It is attached as ``__cause__`` of the re-raised original exception on rank 0, so the
    usual traceback printing shows where, on which rank and host, the task failed.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n" + self.text


class RemoteError(HpcdistError):
    """Stands in for a task exception that could not be pickled back to rank 0."""


class SerializationError(HpcdistError, TypeError):
    """A value could not be pickled or unpickled to travel between ranks.

    The message names the task (or key) and the value's type; the original error is the
    ``__cause__`` where there is one. Only that task, gather or result fails: the world goes on.
    It is also a :class:`TypeError`, as pickling errors are in the standard library.
    """


class PeerLost(WorkerLost):
    """An input of a task could not come to its worker: every holder the worker knew of died.

    An infrastructure failure, not the task's own: the scheduler places the task again and
    never counts it against the task's ``retries``.
    """
