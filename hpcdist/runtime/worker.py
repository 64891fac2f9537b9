"""A worker: holds results, runs tasks, serves its data to peers.

Two threads share one worker and take turns at receiving (leader/follower). The executor thread (the
main thread under MPI) runs tasks one at a time; while it has none, it receives and handles messages
itself (tasks, data requests from peers and the scheduler, frees, steals), so a task that arrives runs
without a hand-off between threads. The communication thread (:meth:`Worker.serve`) stays parked until
the executor has been busy for :data:`TAKEOVER_S`; then it receives until the executor is idle again.
A long task therefore never stops this worker from answering its peers and the scheduler.
"""

from __future__ import annotations

import os
import pickle
import socket
import sys
import threading
import time
import traceback
from collections import deque
from typing import Any

from hpcdist.transports.base import dropped_in
from hpcdist.errors import PeerLost, RemoteError, SerializationError
from hpcdist.runtime import goodbye
from hpcdist.runtime import messages as m
from hpcdist.runtime import serialize, tracing
from hpcdist.runtime.baton import Baton
from hpcdist.runtime.running import (ABSENT, StateFile, cores, end_process, extend_path, pack_values,
                                     report_loop_failure, running_on, safe_str, unpicklable)
from hpcdist.runtime.scheduling import policy
from hpcdist.runtime.sizeof import sizeof

_STOP = object()

#: the communication thread takes over receiving once the executor has been busy this long
TAKEOVER_S = 1e-3
#: results whose pickle is at most this many bytes (and has no out-of-band buffer) travel with the
#: completion report, so rank 0 can answer result() without asking the worker again
INLINE_MAX = 1024


#: result types pickled right away to see whether they ride along (no sizeof estimate first)
_SCALARS = frozenset({type(None), bool, int, float, complex})
_STRINGS = frozenset({str, bytes})


class _Task:
    __slots__ = ("key", "fn_id", "data", "buffers", "missing", "has_deps", "error")

    def __init__(self, key: str, fn_id: str, data: bytes, buffers: list, missing: set[str], has_deps: bool) -> None:
        self.key = key
        self.fn_id = fn_id
        self.data = data
        self.buffers = buffers
        self.missing = missing
        self.has_deps = has_deps  # arguments refer to other results: unpickle with _resolve
        self.error: BaseException | None = None  # an input could not reach this worker: fail, do not run


class Worker:
    """The worker side of the runtime, over any :class:`~hpcdist.transports.base.Transport`.

    Args:
        transport: this worker's endpoint; rank 0 is the scheduler.
        state_file: optional path where the executor records the task it is running, so
            that a launcher can name the task and rank after a crash took the world down.
    """

    def __init__(self, transport: Any, state_file: str | None = None) -> None:
        self.transport = transport
        self.rank = transport.rank
        self.host = transport.host_of(transport.rank)
        self.data: dict[str, Any] = {}
        self.functions: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.runq: deque[Any] = deque()
        self.fetching: dict[str, _Task] = {}  # tasks waiting for dependencies from peers
        self.waiters: dict[str, list[_Task]] = {}  # dep key -> tasks that need it
        # dep key asked of a peer (or pushed by it), not yet arrived -> (that peer, the Compute's holders)
        self.requested: dict[str, tuple[int | None, list[int]]] = {}
        self.dead: set[int] = set()  # peers rank 0 said were lost (PEER_DOWN)
        self.peer_waits: dict[str, list[int]] = {}  # key not here yet -> ranks that asked for it
        self.fetched: list[str] = []  # copies made here, not yet reported to the scheduler
        self.exit_code = 0
        self._done: list[tuple] = []
        self._done_since = 0.0
        self._state = StateFile(state_file) if state_file else None
        self._busy = False  # the state file names a task (cleared lazily, see execute)
        # receiving: the executor while it has no task, else the comm thread once the executor has
        # been busy for TAKEOVER_S (the baton starts held: the executor receives first)
        self._baton = Baton(lambda: transport.interrupt(), TAKEOVER_S, wake_background=True, held=True)
        self._handlers = {
            m.COMPUTE: self._on_compute,
            m.PUT: self._on_put,
            m.GET: self._on_get,
            m.FREE: self._on_free,
            m.STEAL: self._on_steal,
            m.WANT: self._on_want,
            m.PUSH: self._on_push,
            m.HAVE: self._on_have,
            m.SHUTDOWN: self._on_shutdown,
            m.LOST: self._on_lost,
            m.PEER_DOWN: self._on_peer_down,
        }
        self.trace = tracing.worker_trace(self)  # None unless a trace directory is set
        if self.trace is not None:
            self._handlers = self.trace.handlers(self._handlers)

    # ---- receiving ------------------------------------------------------------------------

    def serve(self) -> None:
        """Say hello, then receive whenever the executor is stuck in a task (communication thread).

        Returns once the worker is stopped (shutdown, or a failed transport).
        """
        info = {"host": self.host or socket.gethostname(), "cores": cores(), "pid": os.getpid()}
        self.transport.send(0, (m.HELLO, info))
        baton = self._baton
        while baton.await_turn():
            self._flush_done()  # reports held back for a batch must not wait for a long task
            with baton.lead:
                self._receive(lambda: baton.wanted)

    @property
    def stopped(self) -> bool:
        """Whether the worker has stopped (shutdown, or a failed transport)."""
        return self._baton.stopped

    def _receive(self, enough: Any) -> None:
        """Receive and handle messages until ``enough()`` or the worker stops (the baton held)."""
        handlers, baton = self._handlers, self._baton
        try:
            while not baton.stopped and not enough():
                item = self.transport.recv(None)
                if item is not None:
                    src, header, buffers = item
                    handlers[header[0]](src, header, buffers)
        except BaseException as exc:  # noqa: BLE001 - reported, then the world is torn down
            if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
                raise
            report_loop_failure(exc, self.transport)
            self.transport.abort(1)
            self.stop()

    def _on_shutdown(self, src: int, header: tuple, buffers: list) -> None:
        goodbye.mute()  # the world ends in order: however this process ends now, it is no death
        self.exit_code = header[1]
        self.stop()
        self.transport.send(0, (m.BYE,))

    def _on_lost(self, src: int, header: tuple, buffers: list) -> None:
        """The transport lost rank 0 (it died, or declared this rank lost): say so, end the process
        now with status 4 (the worker-lost reading of ``ExitCode.UNKNOWN``), no ``MPI_Finalize``
        (it would hang). A lost peer worker is rank 0's to handle (it sends PEER_DOWN)."""
        if src == 0:
            sys.stderr.write(f"hpcdist: rank {self.rank}: lost the scheduler: {header[1]}; exiting with status 4\n")
            sys.stdout.flush()
            sys.stderr.flush()
            end_process(4)

    def _on_compute(self, src: int, header: tuple, buffers: list) -> None:
        offset = 0
        wants: dict[int, list[str]] = {}
        ready, gone = [], []
        with self.lock:
            for key in header[3] or ():  # frees first: a key freed then recomputed here
                self.data.pop(key, None)
            if header[2]:
                extend_path(header[2])
            for key, fn_id, fn_bytes, data, nbuf, deps in header[1]:
                if fn_bytes is not None and fn_id not in self.functions:
                    self.functions[fn_id] = fn_bytes  # unpickled when first run, so errors fail the task
                task = _Task(key, fn_id, data, buffers[offset : offset + nbuf] if nbuf else [], set(), bool(deps))
                offset += nbuf
                dropped = dropped_in(task.buffers) if nbuf else None
                if dropped is not None:
                    task.error = MemoryError(f"rank {self.rank} {dropped.describe()}: the arguments of {key!r}")
                for dep, holders in deps.items():
                    if dep in self.data:
                        continue
                    task.missing.add(dep)
                    self.waiters.setdefault(dep, []).append(task)
                    if dep not in self.requested:
                        if holders.__class__ is tuple:  # (pusher, holders): the scheduler had it pushed here
                            if not (self.dead and holders[0] in self.dead):
                                self.requested[dep] = holders
                                continue
                            holders = holders[1]
                        holder = policy.pick_holder(holders, self.rank, self.transport.host_of)
                        if self.dead and holder in self.dead:  # listed before rank 0 applied a death
                            holder = self._next_holder(holders)
                        (gone if holder is None else wants.setdefault(holder, [])).append(dep)
                        self.requested[dep] = (holder, holders)
                if task.missing:
                    self.fetching[key] = task
                else:
                    ready.append(task)
            if ready:
                self.runq.extend(ready)
        for peer, keys in wants.items():
            self.transport.send(peer, (m.WANT, keys))
        for dep in gone:
            self._lost(dep, PeerLost(f"rank {self.rank}: every holder of {dep!r} was lost"))

    def _next_holder(self, holders: list[int]) -> int | None:
        """A live holder among ``holders`` (``self.lock`` held), or None if all are dead."""
        alive = [h for h in holders if h not in self.dead and h != self.rank]
        return policy.pick_holder(alive, self.rank, self.transport.host_of) if alive else None

    def _on_peer_down(self, src: int, header: tuple, buffers: list) -> None:
        """Rank 0 says peer ``header[1]`` was lost: forget it; ask the next holder of each input asked of it.

        An input with no live holder left fails its tasks here and the peers' that asked for it with
        :class:`PeerLost` (infrastructure: placed again, retries kept). Tasks rank 0 takes back (an
        input only the dead peer held, to be recomputed) were already stolen: STEALs come first."""
        rank = header[1]
        self.transport.forget(rank)
        wants: dict[int, list[str]] = {}
        gone: list[str] = []
        with self.lock:
            self.dead.add(rank)
            for key, (holder, holders) in list(self.requested.items()):
                if holder != rank:
                    continue
                holder = self._next_holder(holders)
                self.requested[key] = (holder, holders)
                (gone if holder is None else wants.setdefault(holder, [])).append(key)
        for peer, keys in wants.items():
            self.transport.send(peer, (m.WANT, keys))
        for key in gone:
            self._lost(key, PeerLost(f"rank {self.rank}: {key!r} could not come from lost rank {rank}, none else held it"))

    def _on_put(self, src: int, header: tuple, buffers: list) -> None:
        _, key, data, nbuf = header
        self._arrived(src, key, data, buffers[:nbuf], fetched=False)

    def _on_have(self, src: int, header: tuple, buffers: list) -> None:
        offset = 0
        for key, data, nbuf in header[1]:
            self._arrived(src, key, data, buffers[offset : offset + nbuf], fetched=True)
            offset += nbuf

    def _arrived(self, src: int, key: str, data: Any, buffers: list, fetched: bool) -> None:
        """A value came from ``src``: keep it, or fail what needed it if it cannot be rebuilt here."""
        try:
            if data is None:  # the sender lost every holder of it
                raise PeerLost(f"rank {src} could not get {key!r} for rank {self.rank}: its holders were lost")
            if isinstance(data, str):  # the sender could not pickle it: data says why
                raise SerializationError(data)
            dropped = dropped_in(buffers)
            if dropped is not None:
                raise MemoryError(f"rank {self.rank} {dropped.describe()}: the value of {key!r} from rank {src}")
            value = serialize.loads(data, buffers)
        except Exception as exc:  # noqa: BLE001 - one bad value fails the tasks that need it, not the worker
            if not isinstance(exc, (SerializationError, MemoryError, PeerLost)):
                error = SerializationError(
                    f"the value of {key!r} from rank {src} cannot be unpickled on rank {self.rank}: "
                    f"{type(exc).__name__}: {exc}")
                error.__cause__ = exc
                exc = error
            self._lost(key, exc)
            return
        self._store(key, value, fetched=fetched)

    def _lost(self, key: str, error: BaseException) -> None:
        """``key`` will not arrive: the tasks waiting for it fail with ``error``, and so do peers'."""
        with self.lock:
            self.requested.pop(key, None)
            fetching = self.fetching
            for task in self.waiters.pop(key, ()):
                if fetching.get(task.key) is task:  # not a COMPUTE of the key that a later one replaced
                    del fetching[task.key]
                    task.error = error
                    self.runq.append(task)  # the executor reports the failure (it owns the reports)
            peers = self.peer_waits.pop(key, [])
        why = None if isinstance(error, PeerLost) else str(error)
        for peer in peers:
            self.transport.send(peer, (m.HAVE, [(key, why, 0)]))

    def _store(self, key: str, value: Any, fetched: bool) -> None:
        """Keep a value that arrived and wake whatever waited for it."""
        with self.lock:
            peers = self._keep(key, value)
            if fetched:
                self.fetched.append(key)
        for peer in peers:
            self._send_values(peer, (m.HAVE,), [(key, value)])

    def _keep(self, key: str, value: Any) -> list[int]:
        """Hold ``value``, queue the tasks it completes (``self.lock`` held); the peers that asked for it."""
        self.data[key] = value
        self.requested.pop(key, None)
        fetching = self.fetching
        for task in self.waiters.pop(key, ()):
            task.missing.discard(key)
            if not task.missing and fetching.get(task.key) is task:  # as in _lost
                del fetching[task.key]
                self.runq.append(task)
        return self.peer_waits.pop(key, [])

    def _on_want(self, src: int, header: tuple, buffers: list) -> None:
        self._serve(src, header[1])

    def _on_push(self, src: int, header: tuple, buffers: list) -> None:
        by_dest: dict[int, list[str]] = {}
        for key, dest in header[1]:
            by_dest.setdefault(dest, []).append(key)
        for dest, keys in by_dest.items():
            self._serve(dest, keys)

    def _serve(self, dest: int, keys: list[str]) -> None:
        """Send ``keys`` to peer ``dest``; those not here yet go when they land."""
        items = []
        with self.lock:
            for key in keys:
                if key in self.data:
                    items.append((key, self.data[key]))
                else:  # a scatter or a copy on its way
                    self.peer_waits.setdefault(key, []).append(dest)
        if items:
            self._send_values(dest, (m.HAVE,), items)

    def _on_get(self, src: int, header: tuple, buffers: list) -> None:
        _, req, keys = header
        with self.lock:
            items = [(key, self.data[key]) if key in self.data else (key, ABSENT) for key in keys]
        self._send_values(src, (m.DATA, req), items)

    def _send_values(self, dest: int, prefix: tuple, items: list[tuple[str, Any]]) -> None:
        """One message for many values (see :func:`~hpcdist.runtime.running.pack_values`)."""
        entries, buffers = pack_values(items, self.rank)
        self.transport.send(dest, prefix + (entries,), buffers)

    def _on_free(self, src: int, header: tuple, buffers: list) -> None:
        with self.lock:
            for key in header[1]:
                self.data.pop(key, None)

    def _on_steal(self, src: int, header: tuple, buffers: list) -> None:
        key = header[1]
        with self.lock:
            ok = False
            task = self.fetching.pop(key, None)
            if task is not None:
                ok = True
                for dep in task.missing:  # what it waited for, nothing else waits for: not asked any more
                    waiting = self.waiters.get(dep, [])
                    if task in waiting:
                        waiting.remove(task)
                    if not waiting:
                        self.waiters.pop(dep, None)
                        self.requested.pop(dep, None)
            else:
                for queued in self.runq:
                    if queued is not _STOP and queued.key == key:
                        self.runq.remove(queued)
                        ok = True
                        break
        self.transport.send(0, (m.STEAL_REPLY, key, ok))

    def stop(self) -> None:
        """Make the executor return once its current task is done (queued tasks are dropped),
        and the communication thread return from :meth:`serve`."""
        with self.lock:
            self.runq.appendleft(_STOP)
        self._baton.stop()
        self.transport.interrupt()  # a thread waiting in recv looks again

    # ---- executor thread ----------------------------------------------------------------

    def execute(self) -> None:
        """Run queued tasks until shutdown (executor thread; the main thread under MPI)."""
        with running_on(self.rank):
            self._execute()

    def _execute(self) -> None:
        runq = self.runq
        run, idle = (self._run, self._idle) if self.trace is None else self.trace.hooks(self._run, self._idle)
        while True:
            if not runq:
                idle()
                self._receive_until_work()
            with self.lock:
                task = runq.popleft() if runq else None
            if task is None:  # the communication thread handed it to a thief meanwhile
                continue
            if task is _STOP:
                idle()
                return
            run(task)

    def _receive_until_work(self) -> None:
        """Receive until a task is queued (or the worker stops), taking over from the comm thread."""
        baton = self._baton
        baton.take()  # the one executor: never held by another foreground thread
        try:
            self._receive(lambda: bool(self.runq))
        finally:
            baton.give()

    def _idle(self) -> None:
        """Nothing to run: report what is done and clear the task from the state file."""
        self._flush_done()
        if self._busy:
            self._busy = False
            self._state.write("-")

    def _run(self, task: _Task) -> None:
        if self._state is not None:  # "-" is only written when the executor goes idle
            self._busy = True
            self._state.write("R", task.key)
        start = time.perf_counter()
        try:
            if task.error is not None:
                raise task.error
            fn = self.functions[task.fn_id]
            if isinstance(fn, bytes):
                fn = self.functions[task.fn_id] = serialize.loads(fn)
            if task.has_deps:
                args, kwargs = serialize.loads(task.data, task.buffers, persistent_load=self._resolve)
            else:
                args, kwargs = serialize.loads(task.data, task.buffers)
            task.buffers = []
            result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - every task failure travels back to rank 0
            if isinstance(exc, KeyboardInterrupt):
                raise
            duration = time.perf_counter() - start
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            if self._busy:
                self._busy = False
                self._state.write("-")
            self._report_failure(task.key, exc, text, duration, infra=exc is task.error and isinstance(exc, PeerLost))
            return
        duration = time.perf_counter() - start
        # Small results ride along with the report, so result() needs no second round trip.
        inline = None
        kind = type(result)
        if kind in _SCALARS or (kind in _STRINGS and len(result) <= INLINE_MAX):
            data = pickle.dumps(result, serialize.PROTOCOL)  # what serialize.dumps would write
            nbytes = len(data)
            if nbytes <= INLINE_MAX:
                inline = data
        else:
            try:
                nbytes = sizeof(result)
                if nbytes <= INLINE_MAX:
                    data, bufs = serialize.dumps(result)
                    if not bufs and len(data) <= INLINE_MAX:
                        inline = data
            except Exception as exc:  # noqa: BLE001 - a result that cannot travel fails its task only
                error = unpicklable(task.key, result, exc, self.rank)
                text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
                self._report_failure(task.key, error, text, duration)
                return
        key = task.key
        with self.lock:  # the result kept, and what the report needs, under one lock
            peers = self._keep(key, result)
            fetched, self.fetched = self.fetched, []
            more = bool(self.runq)
            if not self._done:
                self._done_since = start
            self._done.append((key, nbytes, duration, tuple(fetched), inline))
        for peer in peers:
            self._send_values(peer, (m.HAVE,), [(key, result)])
        # Batch reports of tiny tasks; never hold one back for more than ~2 ms.
        if not more or len(self._done) >= 256 or time.perf_counter() - self._done_since > 0.002:
            self._flush_done()

    def _flush_done(self) -> None:
        # also called by the communication thread when it takes over: under the lock, in order
        if self._done:
            with self.lock:
                if self._done:
                    records, self._done = self._done, []
                    self.transport.send(0, (m.DONE, records))

    def _resolve(self, pid: Any) -> Any:
        tag, key = pid
        if tag != m.FUTURE_REF:
            raise ValueError(f"unknown persistent id {pid!r}")
        with self.lock:
            return self.data[key]

    def _report_failure(self, key: str, exc: BaseException, text: str, duration: float, infra: bool = False) -> None:
        self._flush_done()
        try:
            exc_bytes = serialize.dumps(exc)[0]
            serialize.loads(exc_bytes)
        except Exception:  # noqa: BLE001 - the exception itself cannot travel: send its text
            exc_bytes = serialize.dumps(RemoteError(f"{type(exc).__name__}: {safe_str(exc)}"))[0]
        with self.lock:
            fetched, self.fetched = self.fetched, []
        self.transport.send(0, (m.FAILED, key, exc_bytes, text, duration, tuple(fetched), infra))

