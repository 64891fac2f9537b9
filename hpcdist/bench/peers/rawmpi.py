"""Raw MPI figures between ranks 1 and 2, measured in the same mpiexec run as hpcdist.

Every rank calls :func:`measure` before hpcdist starts its world. Ranks that are not
sending wait in a polled ``Ibarrier`` with short sleeps: MPICH's blocking calls busy-poll,
and spinning idle ranks would steal the cores of an oversubscribed node.
"""

from __future__ import annotations

import importlib
import statistics
import sys
import time
from typing import Any

import numpy as np


def _mpi() -> Any:
    mpi4py = importlib.import_module("mpi4py")
    if "mpi4py.MPI" not in sys.modules:
        # the same settings hpcdist's transport uses, since it attaches to this MPI afterwards
        mpi4py.rc.thread_level = "multiple"
        mpi4py.rc.finalize = False
    return importlib.import_module("mpi4py.MPI")


def _sync(comm: Any) -> None:
    req = comm.Ibarrier()
    while not req.Test():
        time.sleep(2e-4)


def measure(nbytes: int, pings: int, reps: int) -> dict[str, float] | None:
    """One-way small-message latency and ``Send``/``Recv`` bandwidth from rank 1 to rank 2.

    Args:
        nbytes: message size of the bandwidth test (received into a fresh ``np.empty``).
        pings: ping-pong round trips of an 8-byte message.
        reps: timed bandwidth repetitions (after one warm-up).

    Returns:
        On rank 0 ``{"raw_latency_us": ..., "raw_bandwidth_gbs": ...}`` (medians); None on
        other ranks, and on every rank when the world has fewer than 3 ranks.
    """
    MPI = _mpi()
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    if size < 3:
        return None
    out: dict[str, float] = {}
    # latency: ranks 1 <-> 2 ping-pong, in blocks of 100 round trips
    _sync(comm)
    small = np.zeros(1, np.float64)
    if rank in (1, 2):
        peer = 3 - rank
        blocks = []
        for _ in range(max(1, pings // 100)):
            t0 = time.perf_counter()
            for _ in range(100):
                if rank == 1:
                    comm.Send([small, MPI.BYTE], peer, 11)
                    comm.Recv([small, MPI.BYTE], peer, 11)
                else:
                    comm.Recv([small, MPI.BYTE], peer, 11)
                    comm.Send([small, MPI.BYTE], peer, 11)
            blocks.append((time.perf_counter() - t0) / 100)
        if rank == 1:
            comm.send(statistics.median(blocks[1:] or blocks) / 2 * 1e6, 0, 12)
    if rank == 0:
        out["raw_latency_us"] = comm.recv(source=1, tag=12)
    # bandwidth: rank 1 -> rank 2 into a fresh np.empty each time, acked with one byte
    src = np.ones(nbytes, np.uint8) if rank == 1 else None
    ack = bytearray(1)
    times = []
    for _ in range(reps + 1):
        _sync(comm)
        if rank == 1:
            t0 = time.perf_counter()
            comm.Send([src, MPI.BYTE], 2, 13)
            comm.Recv([ack, MPI.BYTE], 2, 14)
            times.append(time.perf_counter() - t0)
        elif rank == 2:
            buf = np.empty(nbytes, np.uint8)
            comm.Recv([buf, MPI.BYTE], 1, 13)
            comm.Send([ack, MPI.BYTE], 1, 14)
            del buf
    if rank == 1:
        comm.send(nbytes / statistics.median(times[1:]) / 1e9, 0, 15)
    if rank == 0:
        out["raw_bandwidth_gbs"] = comm.recv(source=1, tag=15)
    _sync(comm)
    return out if rank == 0 else None
