"""A rank's trace recorder: a bounded list of event tuples, written to its file off the hot path.

Recording an event is one ``list.append`` of a tuple the caller builds from values it already has
(see the kinds in :mod:`hpcdist.trace.format`) plus a ``time.perf_counter_ns()`` read; nothing is
encoded then. Strings (keys, function ids) stay references until a flush interns them in the
chunk's string table. The owner flushes when the list reaches :attr:`Recorder.limit`, when its rank
is idle (:meth:`Recorder.idle_flush`) and at close; a process that exits without closing still
flushes at interpreter exit (``atexit``).

Where the trace goes: ``HPCDIST_TRACE_DIR`` (a run directory's ``trace/``). Without it, or with
``HPCDIST_TRACE=off``, :func:`open_recorder` returns None and nothing is recorded (no buffer at all).
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Mapping

from hpcdist.errors import HpcdistError
from hpcdist.paths import trace_file
from hpcdist.trace.format import encode_events, encode_header, encode_names

__all__ = ["Recorder", "open_recorder", "trace_dir", "TRACE_ENV", "TRACE_DIR_ENV", "LIMIT", "IDLE_FLUSH_NS"]

logger = logging.getLogger("hpcdist.trace")

#: ``off`` (or 0, false, no) disables tracing even where a trace directory is set
TRACE_ENV = "HPCDIST_TRACE"
#: the directory of the per-rank trace files; unset: no trace
TRACE_DIR_ENV = "HPCDIST_TRACE_DIR"
#: events held in memory before a flush is due
LIMIT = 32768
#: an idle rank writes what it holds once this long has passed since its last flush (ns)
IDLE_FLUSH_NS = 1_000_000_000

_OFF = frozenset({"off", "0", "false", "no"})
_ON = frozenset({"", "on", "1", "true", "yes"})
_open: "weakref.WeakSet[Recorder]" = weakref.WeakSet()


def trace_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """The trace directory the environment names, or None when tracing is off or has nowhere to go.

    Raises:
        HpcdistError: ``HPCDIST_TRACE`` is neither on nor off.
    """
    env = os.environ if environ is None else environ
    switch = env.get(TRACE_ENV, "").strip().lower()
    if switch not in _ON and switch not in _OFF:
        raise HpcdistError(f"{TRACE_ENV}={env[TRACE_ENV]!r}: expected on or off")
    where = env.get(TRACE_DIR_ENV, "").strip()
    if switch in _OFF or not where:
        return None
    return Path(where)


class Recorder:
    """One rank's events, and its trace file.

    Args:
        path: the file; a new session is appended to it.
        header: the session's header (rank, host, role ...); the clock pair and pid are added here.
        limit: the owner flushes once :attr:`events` holds this many.
        describe: called at each flush; function id -> name of the functions known so far (names
            not yet written go into the file before the events).

    Attributes:
        events: the buffer: callers append event tuples to it directly.
    """

    def __init__(self, path: str | os.PathLike[str], header: dict[str, Any], limit: int = LIMIT,
                 describe: Callable[[], Mapping[str, str]] | None = None) -> None:
        self.events: list[tuple] = []
        self.limit = limit
        self.path = Path(path)
        self.describe = describe
        self.events_written = 0
        self.bytes_written = 0
        self._named: set[str] = set()
        self._lock = threading.Lock()
        wall, perf = time.time_ns(), time.perf_counter_ns()
        self.last_flush = perf
        self.header = {**header, "pid": os.getpid(), "clock": {"wall_ns": wall, "perf_ns": perf}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: Any = open(self.path, "ab")
        self._write([encode_header(self.header)])
        _open.add(self)

    @property
    def closed(self) -> bool:
        """Whether the file is closed (then flushes write nothing)."""
        return self._fh is None

    def flush(self) -> None:
        """Write the events held so far (and new function names) as one chunk; safe from any thread,
        and while other threads append (only the events counted at the start are taken out)."""
        with self._lock:
            if self._fh is None:  # closed (or failed): what comes after is dropped, never held
                del self.events[:]
                return
            self.last_flush = time.perf_counter_ns()
            n = len(self.events)
            chunks = []
            if self.describe is not None:
                names = {k: v for k, v in self.describe().items() if k not in self._named}
                if names:
                    self._named.update(names)
                    chunks.append(encode_names(names))
            if n:
                chunks.append(encode_events(self.events[:n]))
            if chunks and self._write(chunks):
                self.events_written += n
            del self.events[:n]

    def due(self) -> bool:
        """Whether an idle rank should flush: something is held and the last flush is :data:`IDLE_FLUSH_NS` old."""
        return bool(self.events) and time.perf_counter_ns() - self.last_flush >= IDLE_FLUSH_NS

    def idle_flush(self) -> None:
        """Flush if :meth:`due` (an idle rank)."""
        if self.due():
            self.flush()

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        self.flush()
        with self._lock:
            fh, self._fh = self._fh, None
        if fh is not None:
            fh.close()
        _open.discard(self)

    def _write(self, chunks: list[bytes]) -> bool:
        """Write ``chunks`` (lock held, or in the constructor); on an OS error stop tracing, say so once."""
        try:
            for chunk in chunks:
                self._fh.write(chunk)
                self.bytes_written += len(chunk)
            self._fh.flush()
            return True
        except OSError as exc:
            logger.warning("hpcdist: cannot write the trace %s (%s): tracing stops on this rank", self.path, exc)
            try:
                self._fh.close()
            except OSError:
                pass
            self._fh = None
            return False


def open_recorder(rank: int, role: str, host: str | None = None, limit: int = LIMIT,
                  describe: Callable[[], Mapping[str, str]] | None = None,
                  environ: Mapping[str, str] | None = None, **header: Any) -> Recorder | None:
    """A recorder for ``rank`` writing ``TRACE_DIR/rank-N.trace``, or None when tracing is off.

    A trace directory that cannot be written is logged and means no trace, not a failed run.

    Args:
        rank: this rank.
        role: ``"scheduler"`` or ``"worker"``.
        host: this rank's host (default: the host name).
        limit, describe: see :class:`Recorder`.
        environ: instead of ``os.environ``.
        **header: more header fields (e.g. the executor's thread id).
    """
    where = trace_dir(environ)
    if where is None:
        return None
    info = {"rank": rank, "role": role, "host": host or socket.gethostname(), **header}
    try:
        return Recorder(trace_file(where, rank), info, limit=limit, describe=describe)
    except OSError as exc:
        logger.warning("hpcdist: rank %s: no trace, cannot write to %s: %s", rank, where, exc)
        return None


@atexit.register
def _close_all() -> None:
    for recorder in list(_open):
        try:
            recorder.close()
        except Exception:  # noqa: BLE001 - never fail an exiting interpreter over its trace
            pass
