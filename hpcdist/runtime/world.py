"""Starting and stopping a world: rank 0's scheduler thread plus the workers.

A :class:`World` is rank 0's handle on a running runtime, whatever the backend. On MPI,
:func:`start_world` never returns on ranks other than 0: they serve as workers and exit.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from concurrent.futures import Future as _CFuture
from typing import Any, Callable

from hpcdist.errors import HpcdistError, TransportError
from hpcdist.runtime import messages as m
from hpcdist.runtime.scheduler import Scheduler, run_guarded
from hpcdist.runtime.worker import run_worker

#: seconds rank 0 waits for every worker's hello at start-up
STARTUP_TIMEOUT = float(os.environ.get("HPCDIST_STARTUP_TIMEOUT", "60"))

BACKENDS = ("thread", "mpi")
ALIASES = {
    "threads": "thread",
    "threaded": "thread",
    "mpirun": "mpi",
    "mpiexec": "mpi",
    "cluster": "mpi",
}


def resolve_backend(name: str | None) -> tuple[str, str]:
    """The canonical backend name and why it was chosen (argument, variable or automatic)."""
    how = "argument"
    if name is None:
        name, how = os.environ.get("HPCDIST_BACKEND") or None, "HPCDIST_BACKEND"
    if name is None:
        from hpcdist.backends.mpi import in_mpi_world

        return ("mpi", "automatic: started by an MPI launcher") if in_mpi_world() else ("thread", "automatic")
    canonical = ALIASES.get(name.lower(), name.lower())
    if canonical not in BACKENDS:
        valid = ", ".join(BACKENDS)
        aliases = ", ".join(f"{a} -> {c}" for a, c in sorted(ALIASES.items()))
        raise HpcdistError(f"unknown backend {name!r} ({how}); valid: {valid}; aliases: {aliases}")
    return canonical, how


class World:
    """Rank 0's view of a running runtime.

    Args:
        transport: rank 0's endpoint.
        backend: canonical backend name.
        notify: receives the scheduler's client-facing instructions.
        workers_started: a callable joining the worker threads (thread backend) at shutdown.
    """

    def __init__(self, transport: Any, backend: str, join_workers: Callable[[], None] | None = None) -> None:
        self.transport = transport
        self.backend = backend
        self._listeners: list[Callable[[tuple], None]] = []
        self.scheduler = Scheduler(transport, self._notify)
        self._join_workers = join_workers
        self.closed = False
        self.scheduler.wait_for_workers(STARTUP_TIMEOUT)
        self.thread = threading.Thread(target=run_guarded, args=(self.scheduler,), name="hpcdist-scheduler", daemon=True)
        self.thread.start()

    @property
    def info(self) -> dict[int, dict]:
        return self.scheduler.info

    def listen(self, fn: Callable[[tuple], None]) -> None:
        self._listeners.append(fn)

    def unlisten(self, fn: Callable[[tuple], None]) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def _notify(self, instruction: tuple) -> None:
        for fn in list(self._listeners):
            fn(instruction)

    def send(self, header: tuple) -> None:
        """Hand a message to the scheduler thread (loopback, no copy)."""
        if self.closed:
            raise HpcdistError("this hpcdist world has been shut down")
        self.transport.send(0, header)

    def call(self, header_without_future: tuple, timeout: float | None = None) -> Any:
        """Send a request carrying a concurrent future and wait for its answer."""
        cf: _CFuture = _CFuture()
        self.send(header_without_future + (cf,))
        return cf.result(timeout)

    def shutdown(self, code: int = 0) -> None:
        """Stop every worker (each exits with ``code`` on MPI) and close the transport."""
        if self.closed:
            return
        try:
            missing = self.call((m.CLOSE, code), timeout=10)
        except Exception:  # noqa: BLE001 - the scheduler is gone; nothing left to stop politely
            missing = None
        self.closed = True
        self.thread.join(5)
        if missing:
            sys.stderr.write(f"hpcdist: workers {missing} did not confirm shutdown in time\n")
        self.transport.close()
        if self._join_workers is not None:
            self._join_workers()

    def abort(self, code: int = 1) -> None:
        """End the whole world now (MPI_Abort on MPI)."""
        self.closed = True
        self.transport.abort(code)


_current: World | None = None
_lock = threading.Lock()


def current_world() -> World | None:
    """The world this process is attached to (``hpcdist exec``), if any."""
    return _current if _current is not None and not _current.closed else None


def set_current_world(world: World | None) -> None:
    global _current
    with _lock:
        _current = world


def start_world(backend: str | None = None, n_workers: int | None = None) -> World:
    """Start a world on ``backend``; on MPI ranks other than 0 this serves and never returns."""
    name, _ = resolve_backend(backend)
    if name == "mpi":
        return _start_mpi()
    return _start_threads(n_workers or _default_workers())


def _default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _start_threads(n_workers: int) -> World:
    from hpcdist.backends.inproc import InprocHub

    if n_workers < 1:
        raise HpcdistError(f"the thread backend needs at least 1 worker, got {n_workers}")
    hub = InprocHub(n_workers + 1)
    threads = []
    for rank in range(1, n_workers + 1):
        t = threading.Thread(target=run_worker, args=(hub.endpoint(rank),), name=f"hpcdist-worker-{rank}", daemon=True)
        t.start()
        threads.append(t)

    def join() -> None:
        for t in threads:
            t.join(5)

    return World(hub.endpoint(0), "thread", join)


def _start_mpi() -> World:
    from hpcdist.backends.mpi import MPITransport

    transport = MPITransport.from_world()
    if transport.rank != 0:
        state_dir = os.environ.get("HPCDIST_STATE_DIR")
        state_file = os.path.join(state_dir, f"rank-{transport.rank}.task") if state_dir else None
        run_worker(transport, state_file=state_file, exit_process=True)  # ends the process
    try:
        return World(transport, "mpi")
    except BaseException as exc:
        sys.stderr.write(f"hpcdist: rank 0 could not start: {exc}\n{traceback.format_exc()}")
        sys.stderr.flush()
        transport.abort(1)
        raise TransportError(str(exc)) from exc
