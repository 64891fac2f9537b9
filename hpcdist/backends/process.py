"""The ``process`` backend: worker processes on this machine, connected by pipes.

Workers are fresh interpreters (``python -c`` through :mod:`subprocess`: the spawn start
method's semantics, safe under MPI and on macOS), which, unlike :mod:`multiprocessing`'s
spawn, never re-import the driver's ``__main__``: a script that builds a ``Client()`` at
top level without an ``if __name__ == "__main__"`` guard works as under MPI. Rank 0 creates
every pipe of the mesh (see :mod:`hpcdist.transports.pipe`) before the workers start and
hands each worker its ends as inherited file descriptors.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from typing import Callable

from hpcdist.errors import HpcdistError, TransportError
from hpcdist.runtime.running import cores
from hpcdist.runtime.serve import run_worker
from hpcdist.runtime.world import SchedulerWorld, startup_timeout
from hpcdist.transports.pipe import PipeTransport

#: sys.setswitchinterval in worker processes, so GIL-bound tasks delay the comm thread less
WORKER_SWITCH_INTERVAL = 0.001
#: seconds join() waits for worker processes to exit before terminating them
JOIN_TIMEOUT_S = 5.0
# launcher variables a worker must not inherit: it is not an MPI rank
_LAUNCHER_PREFIXES = ("PMI_", "PMIX_", "OMPI_COMM_WORLD", "MV2_COMM_WORLD", "MPI_LOCALNRANKS", "MPI_LOCALRANKID")
# one BLAS/OpenMP thread per worker process unless the user said otherwise
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def start(n_workers: int | None = None) -> SchedulerWorld:
    """Start ``n_workers`` worker processes (default: one per core) connected by pipes.

    Raises:
        HpcdistError: fewer than one worker, or a bad ``HPCDIST_STARTUP_TIMEOUT``.
        TransportError: the workers did not start.
    """
    timeout = startup_timeout()  # a bad setting fails before any worker starts
    transport, join = spawn_world(n_workers or cores())
    try:
        return SchedulerWorld(transport, "process", join, timeout)
    except BaseException as exc:
        transport.abort(1)
        join()
        raise TransportError(f"the process backend could not start: {exc}") from exc



def spawn_world(n_workers: int) -> tuple[PipeTransport, Callable[[], None]]:
    """Start ``n_workers`` worker processes connected to this process (rank 0) and to each other.

    Args:
        n_workers: number of worker processes (ranks 1..n_workers). The caller waits for
            their hello (see :class:`~hpcdist.runtime.world.World`).

    Returns:
        ``(transport, join)``: rank 0's endpoint and a function that waits for the worker
        processes to exit (terminating them after :data:`JOIN_TIMEOUT_S`).

    Raises:
        HpcdistError: too few file descriptors, or a worker process could not be started.
    """
    if n_workers < 1:
        raise HpcdistError(f"the process backend needs at least 1 worker, got {n_workers}")
    size = n_workers + 1
    _ensure_fds(size * (size - 1) + 64)
    ends: dict[int, dict[int, Connection]] = {r: {} for r in range(size)}
    for i in range(size):
        for j in range(i + 1, size):
            a, b = multiprocessing.Pipe(duplex=True)
            ends[i][j], ends[j][i] = a, b
    env = _worker_env()
    procs: dict[int, subprocess.Popen] = {}
    try:
        for rank in range(1, size):
            fds = {peer: conn.fileno() for peer, conn in ends[rank].items()}
            fd_arg = ",".join(f"{peer}={fd}" for peer, fd in fds.items())
            code = f"from hpcdist.backends.process import worker_main; worker_main({rank}, {size}, {fd_arg!r})"
            procs[rank] = subprocess.Popen([sys.executable, "-c", code], env=env, pass_fds=list(fds.values()),
                                           stdin=subprocess.DEVNULL)
    except OSError as exc:
        for p in procs.values():
            p.kill()
        raise HpcdistError(f"cannot start a worker process: {exc}") from exc
    finally:
        for rank in range(1, size):
            for conn in ends[rank].values():
                conn.close()

    def describe(rank: int) -> str:
        proc = procs.get(rank)
        if proc is None:
            return f"rank {rank}"
        code = proc.poll()
        if code is None:
            try:
                code = proc.wait(0.2)
            except subprocess.TimeoutExpired:
                return f"worker rank {rank} (pid {proc.pid})"
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        return f"worker rank {rank} (pid {proc.pid}, {how})"

    transport = PipeTransport(0, size, ends[0], describe)

    def join() -> None:
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        for proc in procs.values():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    transport.processes = procs  # type: ignore[attr-defined]  # for diagnostics and tests
    return transport, join


def _ensure_fds(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return
    if hard != resource.RLIM_INFINITY and needed > hard:
        raise HpcdistError(
            f"the process backend needs ~{needed} file descriptors for its pipes but the hard limit is "
            f"{hard}: use fewer workers, raise `ulimit -Hn`, or use the mpi backend"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LAUNCHER_PREFIXES)}
    for name in _THREAD_VARS:
        env.setdefault(name, "1")
    # the workers import hpcdist from where this process did, even if it is not installed
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if here not in parts:
        env["PYTHONPATH"] = os.pathsep.join([*parts, here])
    return env


def worker_main(rank: int, size: int, fds: str) -> None:
    """Body of a worker process: serve until shut down, then exit with the scheduler's code.

    Args:
        rank: this worker's rank.
        size: number of ranks.
        fds: ``"peer=fd,..."``, the inherited connection to each other rank.
    """
    conns = {}
    for item in fds.split(","):
        peer, fd = item.split("=")
        conns[int(peer)] = Connection(int(fd))
    sys.setswitchinterval(WORKER_SWITCH_INTERVAL)
    transport = PipeTransport(rank, size, conns)
    run_worker(transport, exit_process=True)  # closes the transport and calls sys.exit
