"""The ``local`` backend: every call runs inline in the caller, at submit time, in order.

There is no scheduler, no worker and no thread: :meth:`Client.submit` returns once the
function has run in the calling thread, so ``breakpoint()``/``pdb`` and ``print`` work as in
plain Python, and every future comes back already done. Arguments and results still go
through the same serialization as on the other backends (a task cannot change the caller's
objects, and a result that cannot be pickled fails here too), so a program gives the same
answers here as on ``thread``, ``process`` and ``mpi``.

:class:`LocalWorld` implements :class:`~hpcdist.runtime.world.World` (the same messages),
so the :class:`~hpcdist.runtime.client.Client` is the same code on every backend. It
presents one worker, rank 1, on this host.

Releases: the client hands over a doorbell, a callable that gives the keys released so
far. It comes while the client holds the lock the doorbell takes, and before the key it
announces is added, so it cannot be rung inline: it is kept and rung first thing when the
next message (of any kind) comes. Dropped results therefore stay in memory until the
program's next call into the client.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from collections import deque
from typing import Any, Callable

from hpcdist.errors import HpcdistError, RemoteTraceback
from hpcdist.runtime import messages as m
from hpcdist.runtime import serialize
from hpcdist.runtime.running import cores, running_on, unpicklable
from hpcdist.runtime.world import walltime_warning
from hpcdist.runtime.scheduling.vocabulary import Erred, Memory

#: the rank that stands for "the caller" in who_has, has_what and workers=
RANK = 1


class _Missing(Exception):
    """A dependency that is not in the store (released, or never computed)."""


class LocalWorld:
    """A world of one inline worker (the caller); see the module docstring."""

    backend = "local"

    def __init__(self) -> None:
        self.host = socket.gethostname()
        self.info: dict[int, dict] = {RANK: {"host": self.host, "cores": cores(), "pid": os.getpid()}}
        self.closed = False
        self.data: dict[str, Any] = {}  # key -> value
        self.errors: dict[str, BaseException] = {}  # key -> the exception its task raised
        self.functions: dict[str, Any] = {}  # fn_id -> function
        self._listeners: list[Callable[[tuple], None]] = []
        self._lock = threading.RLock()
        self._doorbells: deque[Callable[[], Any]] = deque()  # not rung yet

    # ---- the World interface -----------------------------------------------------------

    def listen(self, fn: Callable[[tuple], None]) -> None:
        """Receive client-facing instructions (``Memory(key)`` ...)."""
        self._listeners.append(fn)

    def unlisten(self, fn: Callable[[tuple], None]) -> None:
        """Stop sending instructions to ``fn``."""
        if fn in self._listeners:
            self._listeners.remove(fn)

    def send(self, header: tuple) -> None:
        """Handle a client message now, in the calling thread."""
        if self.closed:
            raise HpcdistError("this hpcdist world has been shut down")
        kind = header[0]
        self._ring()
        if kind == m.SUBMIT:
            for task in header[1]:
                self._run(*task)
        elif kind == m.SCATTER:
            for key, _ranks, data, buffers in header[1]:
                with self._lock:
                    self.data[key] = serialize.loads(data, buffers)
                    self.errors.pop(key, None)
                self._notify(Memory(key))
        elif kind == m.CANCEL:
            pass  # every task has finished by the time anyone can cancel it
        else:
            raise HpcdistError(f"the local backend cannot handle a {kind!r} message")

    @property
    def walltime_warning(self) -> threading.Event:
        """Set once the batch system's walltime warning (SIGUSR1) reached this process."""
        return walltime_warning

    @property
    def lost_workers(self) -> dict[int, tuple[str, float]]:
        """No worker to lose: always empty."""
        return {}

    @property
    def recoveries(self) -> list:
        """No worker to lose: always empty."""
        return []

    def call(self, header: tuple, timeout: float | None = None) -> Any:
        """Answer a request (GATHER, CLOSE) at once."""
        self._ring()
        kind = header[0]
        if kind == m.GATHER:
            out = {}
            with self._lock:
                for key in header[1]:
                    if key not in self.data:
                        raise LookupError(f"no worker holds {key!r} (was it released?)")
                    try:
                        out[key] = serialize.dumps(self.data[key])
                    except Exception as exc:  # noqa: BLE001 - as a worker reports it elsewhere
                        raise unpicklable(key, self.data[key], exc, RANK) from exc
            return out
        if kind == m.CLOSE:
            self.closed = True
            return []
        raise HpcdistError(f"the local backend cannot answer a {kind!r} request")

    def shutdown(self, code: int = 0) -> None:
        """Drop every result; later calls fail."""
        self.closed = True
        self._doorbells.clear()
        with self._lock:
            self.data.clear()
            self.errors.clear()

    def abort(self, code: int = 1) -> None:
        """Same as :meth:`shutdown`: nothing runs in the background."""
        self.shutdown(code)

    # ---- queries -----------------------------------------------------------------------

    def who_has(self, keys: Any = None) -> dict[str, list[int]]:
        """Key -> ``[1]`` for each result held (all of them, or those of ``keys``)."""
        self._ring()
        with self._lock:
            if keys is None:
                keys = list(self.data)
            return {k: [RANK] if k in self.data else [] for k in keys}

    def has_what(self) -> dict[int, list[str]]:
        """``{1: sorted keys held}``."""
        self._ring()
        with self._lock:
            return {RANK: sorted(self.data)}

    def running_keys(self) -> set[str]:
        """Nothing runs in the background: an empty set."""
        return set()

    def table_sizes(self) -> dict[str, int]:
        """Results and errors held (released keys dropped first)."""
        self._ring()
        with self._lock:
            return {"local.data": len(self.data), "local.errors": len(self.errors)}

    def counters(self) -> dict[str, int]:
        """No scheduler and no other process: nothing moves between ranks, nothing is stolen."""
        return {"bytes_in": 0, "bytes_out": 0, "steals_sent": 0}

    # ---- releases ----------------------------------------------------------------------

    def drive(self, done: Callable[[], bool], timeout: float | None = None) -> bool:
        """Nothing runs in the background to drive: False (wait the usual way)."""
        return False

    def doorbell(self, take: Callable[[], Any]) -> None:
        """Keep ``take`` (it hands over released keys) until the next message."""
        if not self.closed:
            self._doorbells.append(take)

    def _ring(self) -> None:
        """Ring the doorbells kept since the last message: drop the keys they hand over."""
        doorbells = self._doorbells
        while doorbells:
            try:
                take = doorbells.popleft()
            except IndexError:  # another thread rang the last one
                return
            self._drop(take())

    def _drop(self, keys: Any) -> None:
        with self._lock:
            for key in keys:
                self.data.pop(key, None)
                self.errors.pop(key, None)

    # ---- running a task ----------------------------------------------------------------

    def _notify(self, instruction: tuple) -> None:
        for fn in list(self._listeners):
            fn(instruction)

    def _run(self, spec: Any, fn_id: str, fn_bytes: bytes, data: bytes, buffers: list) -> None:
        key = spec.key
        with self._lock:
            if key in self.data:  # a pure call computed before: same key, same result
                self._notify(Memory(key))
                return
            failed = next((self.errors[d] for d in spec.deps if d in self.errors), None)
        if failed is not None:  # a dependency failed: fail with its error, as elsewhere
            self._fail(key, failed)
            return
        for attempt in range(spec.retries + 1):
            start = time.perf_counter()
            try:
                fn = self.functions.get(fn_id)
                if fn is None:
                    fn = self.functions[fn_id] = serialize.loads(fn_bytes)
                args, kwargs = serialize.loads(data, buffers, persistent_load=self._resolve)
                with running_on(RANK):
                    result = fn(*args, **kwargs)
            except _Missing as exc:
                self._fail(key, LookupError(str(exc)))
                return
            except Exception as exc:  # noqa: BLE001 - task errors go to the future, as elsewhere
                if attempt < spec.retries:
                    continue
                text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                exc.__cause__ = RemoteTraceback(
                    f"task failed on rank {RANK} of 2 on host {self.host} (local backend: inline in the caller, "
                    f"{time.perf_counter() - start:.3g} s):\n{text}"
                )
                self._fail(key, exc)
                return
            with self._lock:
                self.data[key] = result
                self.errors.pop(key, None)
            self._notify(Memory(key))
            return

    def _fail(self, key: str, exc: BaseException) -> None:
        with self._lock:
            self.errors[key] = exc
        self._notify(Erred(key, exc))

    def _resolve(self, pid: Any) -> Any:
        tag, key = pid
        if tag != m.FUTURE_REF:
            raise ValueError(f"unknown persistent id {pid!r}")
        with self._lock:
            if key not in self.data:
                raise _Missing(f"dependency {key!r} is not held any more (was it released?)")
            return self.data[key]


def start(n_workers: int | None = None) -> LocalWorld:
    """Start the local backend; ``n_workers`` is ignored (the caller is the one worker)."""
    return LocalWorld()
