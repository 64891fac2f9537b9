"""The runtime's trace hooks: what a worker and rank 0's scheduler record, kept out of their loops.

With no trace directory (``HPCDIST_TRACE_DIR`` unset, or ``HPCDIST_TRACE=off``) the constructors
return None and the loops run their own methods untouched: the only cost is choosing them, once per
executor loop or scheduler. With one, the hooks wrap those methods:

- a worker's task run (:meth:`WorkerTrace.hooks`): one RUN event per task, start and end;
- its COMPUTE and HAVE handlers (:meth:`WorkerTrace.handlers`): one FETCH event per input that
  came from a peer, from the COMPUTE that asked for it (or the HAVE itself, for an input pushed
  before it was asked for) to its arrival, with its bytes and source;
- rank 0's ``_send_computes`` (:func:`scheduler_hooks`): one PLACE event per COMPUTE message (its
  rank and keys, the send's span); its ``_flush`` writes the events at idle; a worker's loss
  (:meth:`SchedulerTrace.lost`).

Nothing here sends a message: a task's trace is put together from its ranks' files by the merge.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from hpcdist.runtime import messages as m
from hpcdist.trace.format import FETCH, LOST, PLACE, RUN
from hpcdist.trace.recorder import Recorder, open_recorder, trace_dir

__all__ = ["WorkerTrace", "SchedulerTrace", "worker_trace", "scheduler_hooks", "lost", "close"]

_clock = time.perf_counter_ns


def _function_names(functions: dict[str, Any]) -> dict[str, str]:
    """fn_id -> name of the functions a worker has unpickled (those still bytes have no name yet)."""
    names = {}
    for fn_id, fn in list(functions.items()):
        if not isinstance(fn, bytes):
            name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__qualname__
            names[fn_id] = f"{getattr(fn, '__module__', None) or '?'}.{name}"
    return names


class WorkerTrace:
    """A worker's recorder and the wrappers that feed it.

    Args:
        worker: the :class:`~hpcdist.runtime.worker.Worker` (its public ``functions`` and ``requested``
            are read, never written; neither is ever replaced).
        recorder: where the events go.
    """

    def __init__(self, worker: Any, recorder: Recorder) -> None:
        self.worker = worker
        self.recorder = recorder
        self.asked: dict[str, int] = {}  # input key -> when the COMPUTE that needs it came (ns)

    def hooks(self, run: Callable[[Any], None], idle: Callable[[], None]) -> tuple[Callable, Callable]:
        """``run(task)`` and ``idle()`` of the executor loop, recording each run and flushing at idle."""
        events, recorder, clock = self.recorder.events, self.recorder, _clock
        limit = recorder.limit

        def traced_run(task: Any) -> None:
            start = clock()
            run(task)
            events.append((RUN, start, clock(), task.key, task.fn_id))
            if len(events) >= limit:
                self.flush()

        def traced_idle() -> None:
            idle()
            if recorder.due():
                self.flush()

        return traced_run, traced_idle

    def handlers(self, handlers: dict[str, Callable]) -> dict[str, Callable]:
        """A copy of a worker's handler table with COMPUTE and HAVE recording the fetches."""
        on_compute, on_have = handlers[m.COMPUTE], handlers[m.HAVE]
        events, asked, clock = self.recorder.events, self.asked, _clock
        requested = self.worker.requested
        limit = self.recorder.limit

        def traced_compute(src: int, header: tuple, buffers: list) -> None:
            now = clock()
            on_compute(src, header, buffers)
            for entry in header[1]:
                for dep in entry[5] or ():
                    if dep in requested and dep not in asked:
                        asked[dep] = now

        def traced_have(src: int, header: tuple, buffers: list) -> None:
            now = clock()
            offset = 0
            for key, data, nbuf in header[1]:
                if data is not None and not isinstance(data, str):  # None, str: it could not come
                    nbytes = len(data) + sum(memoryview(b).nbytes for b in buffers[offset:offset + nbuf])
                    events.append((FETCH, asked.pop(key, now), now, key, nbytes, src))
                offset += nbuf
            on_have(src, header, buffers)
            if len(events) >= limit:
                self.flush()

        return {**handlers, m.COMPUTE: traced_compute, m.HAVE: traced_have}

    def flush(self) -> None:
        """Write what is held; forget the asks of inputs no longer awaited (their task was stolen)."""
        requested = self.worker.requested
        for key in list(self.asked):
            if key not in requested:
                self.asked.pop(key, None)
        self.recorder.flush()

    def close(self) -> None:
        """Write the rest and close the file."""
        self.flush()
        self.recorder.close()


def worker_trace(worker: Any) -> WorkerTrace | None:
    """The trace of ``worker``, or None when tracing is off (see :mod:`hpcdist.trace.recorder`).

    Built on the thread that will execute its tasks (its id goes into the header).
    """
    functions = worker.functions
    recorder = open_recorder(worker.rank, "worker", worker.host, describe=lambda: _function_names(functions),
                             executor_tid=threading.get_native_id())
    return None if recorder is None else WorkerTrace(worker, recorder)


class SchedulerTrace:
    """Rank 0's recorder: placements (as sent) and worker losses."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def timed(self, flush: Callable[[], None], send_computes: Callable[[int], None],
              compute: dict[int, tuple[list, list]]) -> tuple[Callable[[], None], Callable[[int], None]]:
        """``flush()`` of the scheduler's round (writing the events at idle) and its ``send_computes(rank)``,
        recording each COMPUTE message it sends (at the end of a round, or before a STEAL to that rank).

        ``compute`` is the scheduler's dict of COMPUTE entries being batched per rank (never replaced):
        read before each send.
        """
        events, recorder, clock = self.recorder.events, self.recorder, _clock
        limit = recorder.limit

        def traced_flush() -> None:
            idle = not compute
            flush()
            if idle:
                recorder.idle_flush()
            elif len(events) >= limit:
                recorder.flush()

        def traced_send(rank: int) -> None:
            keys = [entry[0] for entry in compute[rank][0]]
            start = clock()
            send_computes(rank)
            events.append((PLACE, start, clock(), rank, keys))  # one event per COMPUTE message

        return traced_flush, traced_send

    def lost(self, rank: int, reason: str) -> None:
        """Worker ``rank`` was lost."""
        self.recorder.events.append((LOST, _clock(), rank, str(reason)))

    def close(self) -> None:
        """Write the rest and close the file."""
        self.recorder.close()


def scheduler_hooks(transport: Any, flush: Callable[[], None], send_computes: Callable[[int], None],
                    compute: dict[int, tuple[list, list]]) -> tuple[SchedulerTrace | None, Callable, Callable]:
    """``(trace, flush, send_computes)`` for rank 0's scheduler: ``(None, flush, send_computes)`` when off."""
    if trace_dir() is None:
        return None, flush, send_computes
    recorder = open_recorder(transport.rank, "scheduler", transport.host_of(transport.rank), size=transport.size)
    if recorder is None:
        return None, flush, send_computes
    trace = SchedulerTrace(recorder)
    return (trace, *trace.timed(flush, send_computes, compute))


def lost(trace: SchedulerTrace | None, rank: int, reason: str) -> None:
    """Record the loss of worker ``rank`` if rank 0 traces."""
    if trace is not None:
        trace.lost(rank, reason)


def close(trace: WorkerTrace | SchedulerTrace | None) -> None:
    """Close ``trace`` if there is one."""
    if trace is not None:
        trace.close()
