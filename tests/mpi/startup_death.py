"""A worker dies before the run starts (tests/faults/test_startup_deaths.py), under
``mpiexec -disable-auto-cleanup -n 4``: ``python startup_death.py MODE``.

``before_init``: rank 2 ends (``os._exit(3)``) before MPI_Init: every other rank must end by itself
(its start-up timeout), not wait in MPI_Init for ever. ``before_hello``: rank 2 ends (``os._exit(3)``) once MPI is up but before its hello. (A death after the hello but
before the start is tested on the process backend: here the detector needs the bound to find it,
and a rank that stays silent that long before its own hello is taken for dead too.)

Rank 0 prints ``started: [live ranks] lost: [ranks]``, what each survivor heard of (``dead on R:
[ranks]``, the PEER_DOWNs it got), checks tasks whose inputs move between the survivors, and
prints ``driver done``.
"""

import gc
import os
import sys

MODE = sys.argv[1]
if MODE == "before_init" and os.environ.get("PMI_RANK") == "2":
    os._exit(3)  # before MPI_Init: the others wait in it, with the GIL held

import hpcdist  # noqa: E402
import hpcdist.backends.mpi as mpi_backend  # noqa: E402

_run_worker = mpi_backend.run_worker


def run_worker(transport, **kwargs):
    if MODE == "before_hello" and transport.rank == 2:
        os._exit(3)
    return _run_worker(transport, **kwargs)


mpi_backend.run_worker = run_worker


def dead_peers():
    """(rank, the peers this worker was told were lost)."""
    from hpcdist.runtime.running import current_rank
    from hpcdist.runtime.worker import Worker

    workers = [o for o in gc.get_objects() if isinstance(o, Worker)]
    return current_rank(), sorted(workers[0].dead) if workers else None


def inc(x):
    return x + 1


def add(a, b):
    return a + b


def main():
    with hpcdist.Client(backend="mpi") as client:
        live = sorted(client.workers)
        print(f"started: {live} lost: {sorted(client.lost_workers)}", flush=True)
        for r in live:
            rank, dead = client.submit(dead_peers, workers=[r], pure=False).result(timeout=30)
            print(f"dead on {rank}: {dead}", flush=True)
        xs = [client.submit(inc, i, workers=[live[i % 2]]) for i in range(6)]
        sums = [client.submit(add, xs[i], xs[i + 1], workers=[live[(i + 1) % 2]]) for i in range(5)]
        got = client.gather(sums)
        assert got == [2 * i + 3 for i in range(5)], got
        print("sums ok", flush=True)
    print("driver done", flush=True)


main()
