"""What a rank knows about the task it runs, and how it describes failures.

:func:`current_rank` names the worker a task runs on (a thread-local set by the executor),
:class:`StateFile` records the running task for a launcher to read after a crash, and
:func:`unpicklable` and :func:`report_loop_failure` word the errors of values that cannot
travel and of hpcdist's own loops.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sys
import threading
import traceback
from typing import Any, Iterator

from hpcdist.errors import SerializationError, TransportError
from hpcdist.runtime import goodbye, serialize
from hpcdist.runtime.log import get_logger

logger = get_logger(__name__)

_running = threading.local()  # the worker whose executor is this thread (current_rank)


def current_rank() -> int | None:
    """The rank of the worker running the calling task, or None outside a task's thread."""
    return getattr(_running, "rank", None)


@contextlib.contextmanager
def running_on(rank: int) -> Iterator[None]:
    """Make :func:`current_rank` say ``rank`` in this thread (a backend that runs tasks inline)."""
    previous = getattr(_running, "rank", None)
    _running.rank = rank
    try:
        yield
    finally:
        _running.rank = previous


def cores() -> int:
    """How many cores this process may run on (its CPU affinity on Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class StateFile:
    """The task this worker runs, in a file a launcher reads after a crash (``hpcdist postmortem``).

    One 256-byte line, ``R <key>`` while a task runs and ``-`` otherwise, written through a
    shared memory map: no system call per task, and the page cache keeps what was written
    even when the process is killed.
    """

    SIZE = 256

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.pwrite(fd, b"-".ljust(self.SIZE), 0)
            self._map = mmap.mmap(fd, self.SIZE)
        finally:
            os.close(fd)

    def write(self, mark: str, key: str = "") -> None:
        """Record ``mark`` (``"R"`` with the task's key, or ``"-"``)."""
        line = f"{mark} {key}\n".encode()[: self.SIZE - 1] if key else b"-\n"
        self._map[: self.SIZE] = line.ljust(self.SIZE)


def unpicklable(key: str, value: Any, exc: BaseException, rank: int | None) -> SerializationError:
    """The error of a value that failed to pickle: names the key, the type and the reason."""
    kind = type(value)
    where = f" on rank {rank}" if rank is not None else ""
    error = SerializationError(
        f"the result of task {key!r} cannot be pickled{where}: a {kind.__module__}.{kind.__qualname__} "
        f"({type(exc).__name__}: {safe_str(exc)}); return a picklable value instead")
    error.__cause__ = exc
    return error


def safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the failure
        return object.__repr__(exc)


def report_loop_failure(exc: BaseException, transport: Any) -> None:
    """Say why one of hpcdist's own loops failed (the caller then aborts the world, or a worker
    that could say goodbye to rank 0 only its own process)."""
    if isinstance(exc, TransportError):  # the world is going down (e.g. rank 0 is gone): briefly
        logger.error("hpcdist: %s", exc)  # transport errors name the rank already
    else:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        logger.error("hpcdist: internal error on rank %s:\n%s", transport.rank, text.rstrip("\n"))
    goodbye.say(f"an internal error in its loop: {type(exc).__name__}: {safe_str(exc)}")


def end_process(code: int) -> None:
    """End the process with ``code`` now, without ``MPI_Finalize``, even while another thread still runs a task.

    The C library's ``exit`` (not ``os._exit``): it runs the MPI library's exit handlers, and
    without them Hydra kills every other rank of the job (rank 0 included, even one that is
    still working after its ``close()``). The GIL stays held (``PyDLL``), so no Python code runs
    while the process ends.
    """
    goodbye.mute()  # hpcdist's own end, not a death
    try:
        import ctypes

        ctypes.PyDLL(None).exit(code)
    except (OSError, AttributeError):  # no C library to call: end without its handlers
        pass
    os._exit(code)


#: stands for a requested key the worker does not hold (:func:`pack_values` sends it as data None)
ABSENT = object()


def pack_values(items: list[tuple[str, Any]], rank: int) -> tuple[list[tuple], list]:
    """Entries ``(key, data, nbuf)`` and the buffers in order, for one message of many values.

    A value that cannot be pickled goes as ``(key, why, 0)`` (``why`` a str), so only what needs it
    fails; :data:`ABSENT` goes as ``(key, None, 0)``.
    """
    entries, buffers = [], []
    for key, value in items:
        if value is ABSENT:
            entries.append((key, None, 0))
            continue
        try:
            data, bufs = serialize.dumps(value)
        except Exception as exc:  # noqa: BLE001 - any error of any __reduce__
            entries.append((key, str(unpicklable(key, value, exc, rank)), 0))
            continue
        entries.append((key, data, len(bufs)))
        buffers.extend(bufs)
    return entries, buffers


def extend_path(entries: list[str]) -> None:
    """Make the modules rank 0 can import importable here too (shared file systems)."""
    for entry in reversed(entries):
        if entry not in sys.path:
            sys.path.insert(0, entry)


