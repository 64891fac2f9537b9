"""The mpi4py.futures peer: run under ``mpiexec -n N python -m mpi4py.futures -m ...``."""

from __future__ import annotations

import importlib
import os

from hpcdist.bench.procstat import children_of
from hpcdist.bench.systems import ExecutorSystem


def system() -> ExecutorSystem:
    """An :class:`ExecutorSystem` over the world's shared ``MPIPoolExecutor`` (N-1 workers)."""
    futures = importlib.import_module("mpi4py.futures")
    ex = futures.MPIPoolExecutor()
    # every rank of a one-host run is a child of the same launcher proxy
    return ExecutorSystem("mpi4py.futures", ex, lambda: children_of(os.getppid()) or [os.getpid()])
