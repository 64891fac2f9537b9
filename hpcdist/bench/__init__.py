"""``hpcdist bench``: the runtime's per-task overhead, latency and bandwidth next to its peers.

:func:`run_bench` (in :mod:`hpcdist.bench.runner`) starts hpcdist's world on one backend
(MPI by default) and, where installed, that backend's peers (mpi4py.futures, dask.distributed,
Process/ThreadPoolExecutor), runs the same workloads in each and returns the results; :mod:`hpcdist.bench.report` makes the table. See
docs/bench.md. Nothing is imported eagerly, so ``python -m hpcdist.bench.child`` stays clean.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PEERS", "WORKLOADS", "run_bench"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from hpcdist.bench import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'hpcdist.bench' has no attribute {name!r}")
