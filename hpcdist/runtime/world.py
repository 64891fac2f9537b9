"""Starting and stopping a world: rank 0's scheduler thread plus the workers.

A :class:`World` is rank 0's handle on a running runtime, whatever the backend. On MPI,
:func:`start_world` never returns on ranks other than 0: they serve as workers and exit.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future as _CFuture
from concurrent.futures import TimeoutError as CFTimeoutError
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

from hpcdist.backends import canonical_name, get_backend
from hpcdist.envvars import env_count, env_seconds
from hpcdist.errors import HpcdistError
from hpcdist.paths import warning_file
from hpcdist.runtime import goodbye
from hpcdist.runtime import messages as m
from hpcdist.runtime.log import get_logger
from hpcdist.runtime.scheduler import Scheduler, run_guarded
from hpcdist.runtime.scheduling.recovery import DEFAULT_ALLOWED_FAILURES
from hpcdist.runtime.running import cores
from hpcdist.transports.mpienv import in_mpi_world, lone_copy

logger = get_logger(__name__)

#: seconds rank 0 waits for every worker's hello at start-up (env HPCDIST_STARTUP_TIMEOUT overrides)
STARTUP_TIMEOUT = 60.0


def startup_timeout() -> float:
    """Seconds rank 0 waits for the workers: ``HPCDIST_STARTUP_TIMEOUT`` or :data:`STARTUP_TIMEOUT`.

    Raises:
        HpcdistError: the variable is set but is not a positive number of seconds.
    """
    return env_seconds("HPCDIST_STARTUP_TIMEOUT", STARTUP_TIMEOUT)


def allowed_failures() -> int:
    """Deaths of workers running one task before it fails with ``KilledWorker``:
    ``HPCDIST_ALLOWED_FAILURES`` or :data:`~hpcdist.runtime.scheduling.recovery.DEFAULT_ALLOWED_FAILURES` (3).

    Raises:
        HpcdistError: the variable is set but is not a positive whole number.
    """
    return env_count("HPCDIST_ALLOWED_FAILURES", DEFAULT_ALLOWED_FAILURES)


def resolve_backend(name: str | None) -> tuple[str, str]:
    """The canonical backend name and why it was chosen.

    Order: the explicit argument, else ``HPCDIST_BACKEND``, else automatic (``mpi`` when an
    MPI launcher started this process in a world of more than one rank, else ``process``).

    Returns:
        ``(name, reason)``, the reason being ``"argument"``, ``"HPCDIST_BACKEND"`` or
        ``"automatic: ..."``.

    Raises:
        HpcdistError: an unknown name (the message lists the valid names and aliases), or no
            name while the batch system started several copies of this program outside one MPI
            world (see :func:`hpcdist.transports.mpienv.lone_copy`).
    """
    if name is not None:
        return canonical_name(name, "the backend argument"), "argument"
    env = os.environ.get("HPCDIST_BACKEND", "").strip()
    if env:
        return canonical_name(env, "HPCDIST_BACKEND"), "HPCDIST_BACKEND"
    if in_mpi_world():
        return "mpi", "automatic: started by an MPI launcher in a world of more than one rank"
    problem = lone_copy()
    if problem:
        raise HpcdistError(problem)
    return "process", f"automatic: not in an MPI world; one worker process per core ({cores()})"


@runtime_checkable
class World(Protocol):
    """Rank 0's handle on a running runtime, whatever the backend: what a client uses.

    Implemented by :class:`SchedulerWorld` (the thread, process and mpi backends) and by
    :class:`~hpcdist.backends.local.LocalWorld`.
    """

    #: canonical backend name
    backend: str
    #: True once shut down or aborted
    closed: bool

    @property
    def info(self) -> dict[int, dict]:
        """Rank -> ``{"host", "cores", "pid"}`` of every worker."""

    @property
    def walltime_warning(self) -> threading.Event:
        """Set once the batch system's walltime warning (SIGUSR1) reached this process."""

    @property
    def lost_workers(self) -> dict[int, tuple[str, float]]:
        """Rank -> ``(reason, time.time())`` of every worker that died; they are no longer in :attr:`info`."""

    @property
    def recoveries(self) -> list:
        """What each loss cost, in order (:class:`~hpcdist.runtime.losses.WorkerLoss` records)."""

    def listen(self, fn: Callable[[tuple], None]) -> None:
        """Call ``fn`` with every client-facing instruction (:class:`Memory`, :class:`Erred`, :class:`Cancelled`)."""

    def unlisten(self, fn: Callable[[tuple], None]) -> None:
        """Stop calling ``fn``."""

    def send(self, header: tuple) -> None:
        """Hand a client message (SUBMIT, SCATTER, CANCEL) to the scheduler."""

    def call(self, header_without_future: tuple, timeout: float | None = None) -> Any:
        """Send a request (GATHER, CLOSE) and wait for its answer."""

    def drive(self, done: Callable[[], bool], timeout: float | None = None) -> bool:
        """Wait for ``done()`` while running the scheduler's loop in this thread; False at once
        if this thread cannot (then wait the usual way)."""

    def doorbell(self, take: Callable[[], list[str]]) -> None:
        """Have the scheduler drop the keys ``take()`` hands over, after every message sent so far."""

    def who_has(self, keys: list[str] | None = None) -> dict[str, list[int]]:
        """Key -> the ranks holding it."""

    def has_what(self) -> dict[int, list[str]]:
        """Rank -> the keys it holds."""

    def running_keys(self) -> set[str]:
        """The keys being run now, as far as rank 0 knows."""

    def table_sizes(self) -> dict[str, int]:
        """Entries of every per-key table behind this world (a diagnostic)."""

    def counters(self) -> dict[str, int]:
        """Rank 0's traffic so far: ``bytes_in``, ``bytes_out`` (payload bytes from / to workers)
        and ``steals_sent`` (a diagnostic)."""

    def shutdown(self, code: int = 0) -> None:
        """Stop every worker and release the world."""

    def abort(self, code: int = 1) -> None:
        """End the whole world now."""


class SchedulerWorld:
    """Rank 0's view of a runtime of a scheduler loop and workers over a transport.

    Args:
        transport: rank 0's endpoint.
        backend: canonical backend name.
        join_workers: optional callable that waits for the workers (threads or processes)
            at shutdown.
        timeout: seconds to wait for every worker's hello; default :func:`startup_timeout`.
    """

    def __init__(self, transport: Any, backend: str, join_workers: Callable[[], None] | None = None,
                 timeout: float | None = None) -> None:
        self.transport = transport
        self.backend = backend
        self._listeners: list[Callable[[tuple], None]] = []
        self.scheduler = Scheduler(transport, self._notify)
        self._send_lock = threading.Lock()
        self._main_drives = False  # the main thread runs the scheduler loop (drive) now ...
        self._sigint = False  # ... and a Ctrl-C came meanwhile: raised once the round is over
        _hold_sigint(self)
        self._join_workers = join_workers
        self.closed = False
        # The scheduler thread makes rank 0's first MPI calls (the start-up handshake); later,
        # whoever runs the loop receives (see Scheduler.drive), and the thread that receives
        # tests every posted send, so a send from a thread that stops calling MPI completes.
        started: _CFuture = _CFuture()
        timeout = startup_timeout() if timeout is None else timeout
        self.thread = threading.Thread(target=self._run, args=(started, timeout, allowed_failures()),
                                       name="hpcdist-scheduler", daemon=True)
        self.thread.start()
        started.result()

    def _run(self, started: _CFuture, timeout: float, failures: int) -> None:
        try:
            self.scheduler.wait_for_workers(timeout, failures)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the thread that started the world
            started.set_exception(exc)
            return
        started.set_result(None)
        run_guarded(self.scheduler)

    @property
    def info(self) -> dict[int, dict]:
        """Rank -> ``{"host", "cores", "pid"}`` of every live worker (their hellos)."""
        return self.scheduler.info

    @property
    def lost_workers(self) -> dict[int, tuple[str, float]]:
        """Rank -> ``(reason, time.time())`` of every worker that died (the scheduler hears it from the transport)."""
        return dict(self.scheduler.lost)

    @property
    def recoveries(self) -> list:
        """What each loss cost, in order (:class:`~hpcdist.runtime.losses.WorkerLoss` records; a copy)."""
        return list(self.scheduler.recoveries)

    @property
    def walltime_warning(self) -> threading.Event:
        """Set once the batch system's walltime warning (SIGUSR1) reached rank 0."""
        return walltime_warning

    def who_has(self, keys: list[str] | None = None) -> dict[str, list[int]]:
        """Key -> the ranks holding it, for ``keys`` (default: every key held)."""
        return self.call((m.QUERY, "who_has", (keys,)))

    def has_what(self) -> dict[int, list[str]]:
        """Rank -> the keys it holds."""
        return self.call((m.QUERY, "has_what", ()))

    def running_keys(self) -> set[str]:
        """The key each worker runs now, as far as rank 0 knows."""
        return self.call((m.QUERY, "running_keys", ()))

    def table_sizes(self) -> dict[str, int]:
        """The scheduler's per-key tables (see :meth:`Scheduler.table_sizes`)."""
        return self.call((m.QUERY, "table_sizes", ()))

    def counters(self) -> dict[str, int]:
        """The scheduler's traffic counters (see :meth:`Scheduler.counters`), read without a round trip."""
        return self.scheduler.counters()

    def listen(self, fn: Callable[[tuple], None]) -> None:
        """Call ``fn`` in the loop's thread with every client-facing instruction."""
        self._listeners.append(fn)

    def unlisten(self, fn: Callable[[tuple], None]) -> None:
        """Stop calling ``fn``."""
        if fn in self._listeners:
            self._listeners.remove(fn)

    def _notify(self, instruction: tuple) -> None:
        for fn in list(self._listeners):
            fn(instruction)

    def send(self, header: tuple) -> None:
        """Hand a message to the scheduler thread (loopback, no copy)."""
        if self.scheduler.failed is not None:
            raise self.scheduler.failed
        if self.closed:
            raise HpcdistError("this hpcdist world has been shut down")
        with self._send_lock:  # loopback order and the count agree
            self.scheduler.loopback(header)

    def drive(self, done: Callable[[], bool], timeout: float | None = None) -> bool:
        """Wait for ``done()`` while running the scheduler's loop in this thread.

        Returns:
            False without waiting if another thread runs the loop: wait the usual way.

        Raises:
            KeyboardInterrupt: Ctrl-C came while the loop ran here; it is held back until
                the round is over, so a state change is never cut in half.
        """
        scheduler = self.scheduler
        if self.closed or scheduler.stopped:
            return False
        main = threading.current_thread() is threading.main_thread()
        if main:
            self._main_drives = True
        try:
            return scheduler.drive(done, timeout, self._interrupted)
        finally:
            if main:
                self._main_drives = False
                if self._sigint:
                    self._sigint = False
                    raise KeyboardInterrupt

    def _interrupted(self) -> bool:
        return self._sigint

    def on_sigint(self, signum: int, frame: Any) -> None:
        """SIGINT: held back while the main thread runs the loop, else KeyboardInterrupt."""
        if not self._main_drives:
            signal.default_int_handler(signum, frame)
        self._sigint = True
        self.transport.interrupt()

    def doorbell(self, take: Callable[[], list[str]]) -> None:
        """Have the scheduler drop the keys ``take()`` hands over, once it has handled every
        message sent so far (at the end of one of its rounds; no message, no wake-up)."""
        if not self.closed:
            self.scheduler.doorbell(take)

    def call(self, header_without_future: tuple, timeout: float | None = None) -> Any:
        """Send a request carrying a concurrent future and wait for its answer."""
        cf: _CFuture = _CFuture()
        self.send(header_without_future + (cf,))
        self.drive(cf.done, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:  # wake up now and then: a failed scheduler answers nothing
            wait = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.monotonic()))
            try:
                return cf.result(wait)
            except CFTimeoutError:
                if self.scheduler.failed is not None:
                    raise self.scheduler.failed from None
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    def shutdown(self, code: int = 0) -> None:
        """Stop every worker (each exits with ``code`` on MPI) and close the transport."""
        if self.closed:
            return
        try:
            missing = self.call((m.CLOSE, code), timeout=10)
        except Exception:  # noqa: BLE001 - the scheduler is gone; nothing left to stop politely
            missing = list(self.info)
        self.closed = True
        self.thread.join(5)
        _release_sigint(self)
        if missing:
            # Workers that do not answer would keep MPI_Finalize waiting for ever: end them.
            logger.error("hpcdist: workers %s did not confirm shutdown in time; aborting", missing)
            self.transport.abort(code or 1)
        self.transport.close()
        if self._join_workers is not None:
            self._join_workers()

    def abort(self, code: int = 1) -> None:
        """End the whole world now (MPI_Abort on MPI)."""
        self.closed = True
        self.transport.abort(code)


def _hold_sigint(world: SchedulerWorld) -> None:
    """Route Ctrl-C through ``world.on_sigint`` if Python's default handler has it (main thread)."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, world.on_sigint)


def _release_sigint(world: SchedulerWorld) -> None:
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) == world.on_sigint:
        signal.signal(signal.SIGINT, signal.default_int_handler)


#: set on rank 0 when the batch system's walltime warning (SIGUSR1) arrived
walltime_warning = threading.Event()


def is_walltime_warning(environ: Mapping[str, str] | None = None) -> bool:
    """Whether a SIGUSR1 that reached rank 0 is the batch system's walltime warning.

    Hydra's ``mpiexec -disable-auto-cleanup`` also sends SIGUSR1 to every survivor when a rank
    dies. So in a world with a state directory (``HPCDIST_STATE_DIR``: job scripts, ``hpcdist
    run``), the signal is the warning only if the warning's mark exists
    (:func:`~hpcdist.paths.warning_file`), which whoever forwards the warning creates first.
    Without a state directory (a bare launch) every SIGUSR1 is the warning.
    """
    state_dir = (os.environ if environ is None else environ).get("HPCDIST_STATE_DIR")
    return not state_dir or warning_file(state_dir).exists()


def install_signal_handlers(rank: int) -> None:
    """SIGUSR1 is the walltime warning the rendered job scripts forward to every rank; on
    workers, SIGTERM and SIGINT wait for rank 0's shutdown (see :func:`_await_shutdown`).

    Its default action would kill the process; instead workers ignore it (rank 0 decides
    what to do) and rank 0 records it in :data:`walltime_warning`. Only possible from the
    main thread; elsewhere the defaults stay.
    """
    def on_warning(signum: int, frame: Any) -> None:
        if not is_walltime_warning():
            return
        if not walltime_warning.is_set():
            sys.stderr.write("hpcdist: walltime warning received (SIGUSR1)\n")
        walltime_warning.set()

    try:
        signal.signal(signal.SIGUSR1, on_warning if rank == 0 else signal.SIG_IGN)
        if rank == 0:  # the interpreter resets Python handlers to SIG_DFL at its end: a late notice would kill it
            atexit.register(signal.signal, signal.SIGUSR1, signal.SIG_IGN)
        if rank != 0:  # scancel/qdel/mpiexec signal every rank at once: rank 0 stops the world
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, _await_shutdown)
    except ValueError:  # not the main thread
        pass


#: seconds a worker given SIGTERM or SIGINT waits for rank 0's shutdown before it exits itself
WORKER_STOP_GRACE = 10.0
_give_up: list[threading.Timer] = []


def _await_shutdown(signum: int, frame: Any) -> None:
    """A worker does not die on SIGTERM/SIGINT (MPICH would report a bad termination and rank
    0 could not write its manifest): it waits, bounded, for rank 0's shutdown message."""
    if _give_up:
        return

    def give_up() -> None:
        why = f"{signal.Signals(signum).name} and no shutdown from rank 0 within {WORKER_STOP_GRACE:g} s"
        sys.stderr.write(f"hpcdist: worker pid {os.getpid()}: {why}; exiting\n")
        sys.stderr.flush()
        goodbye.say(why)  # rank 0 recovers now rather than at the failure detector's bound
        os._exit(128 + signum)

    timer = threading.Timer(WORKER_STOP_GRACE, give_up)
    timer.daemon = True
    _give_up.append(timer)
    timer.start()


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
    """Start a world on ``backend`` (resolved by :func:`resolve_backend`).

    On MPI ranks other than 0 this serves as a worker and never returns.

    Args:
        backend: a backend name or alias, or None for the default.
        n_workers: workers for the thread and process backends (default: one per core).
    """
    name, _ = resolve_backend(backend)
    allowed_failures()  # a bad setting fails before any worker starts
    spec = get_backend(name)
    if n_workers is not None and spec.uses_worker_count and n_workers < 1:
        raise HpcdistError(f"the {name} backend needs at least 1 worker, got {n_workers}")
    return spec.start(n_workers if spec.uses_worker_count else None)
