"""The ``mpi`` backend: the MPI world, rank 0 drives, ranks 1..N-1 work."""

from __future__ import annotations

import os
import sys
import traceback

from hpcdist.errors import TransportError
from hpcdist.paths import rank_task_file
from hpcdist.runtime.serve import run_worker
from hpcdist.runtime.world import SchedulerWorld, install_signal_handlers, startup_timeout
from hpcdist.transports.mpi import MPITransport
from hpcdist.transports.mpiworld import abort_world


def start(n_workers: int | None = None) -> SchedulerWorld:
    """Join the MPI world this process was launched in: rank 0 returns its world, every other
    rank serves as a worker and ends the process (never returns).

    Args:
        n_workers: ignored (the launcher fixed the world's size).

    Raises:
        TransportError: the world could not start (the other ranks are aborted first).
    """
    try:
        transport = MPITransport.from_world(startup_timeout_s=startup_timeout())
    except TransportError as exc:
        abort_world(exc)  # e.g. the other ranks serve mpi4py.futures: they would wait for ever
        raise
    install_signal_handlers(transport.rank)
    if transport.rank != 0:
        state_dir = os.environ.get("HPCDIST_STATE_DIR")
        state_file = str(rank_task_file(state_dir, transport.rank)) if state_dir else None
        run_worker(transport, state_file=state_file, exit_process=True)  # ends the process
    try:
        return SchedulerWorld(transport, "mpi")
    except BaseException as exc:
        sys.stderr.write(f"hpcdist: rank 0 could not start: {exc}\n{traceback.format_exc()}")
        sys.stderr.flush()
        transport.abort(1)
        raise TransportError(str(exc)) from exc
