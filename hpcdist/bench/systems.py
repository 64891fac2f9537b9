"""One small interface over every benchmarked system, so each workload is written once.

A *system* runs tasks on N-1 workers: hpcdist itself (its MPI world), or a peer. Handles are
the system's own futures. Systems whose futures cannot be task arguments (executors) resolve
them on the driver first, which is how a user of those systems moves data: through the master.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
from typing import Any, Callable, Iterable, Sequence

from hpcdist.bench.procstat import children_of


def _nbytes(obj: Any) -> int:
    return int(getattr(obj, "nbytes", 0)) if hasattr(obj, "__array_interface__") else 0


class System:
    """What a workload may ask of a system.

    Attributes:
        name: the column name in the table.
        placement: whether :meth:`submit` honours ``where`` (a worker index).
    """

    name = "?"
    placement = False

    def submit(self, fn: Callable, *args: Any, where: int | None = None) -> Any:
        """Run ``fn(*args)`` (on worker number ``where`` when :attr:`placement`)."""
        raise NotImplementedError

    def wait(self, handles: Sequence[Any]) -> None:
        """Block until every handle is done (the value stays where it was computed)."""
        cf.wait(handles)

    def value(self, handle: Any) -> Any:
        """The value of one handle, brought to the driver."""
        return handle.result()

    def gather(self, handles: Sequence[Any]) -> list[Any]:
        """The values of many handles, brought to the driver."""
        return [self.value(h) for h in handles]

    def map_gather(self, fn: Callable, items: Iterable[Any]) -> list[Any]:
        """``[fn(x) for x in items]`` run as one task per item, results on the driver."""
        raise NotImplementedError

    def bytes_via_master(self) -> int | None:
        """Payload bytes that went through the driver's process so far (None: not measured)."""
        return None

    def pids(self) -> list[int]:
        """Process ids of the driver and every worker (same host), for the idle-CPU workload."""
        return [os.getpid()]

    def rank0_tables(self) -> dict[str, int] | None:
        """Entries of every per-key table of the driver's scheduler (None: not measured)."""
        return None

    def steals(self) -> int | None:
        """Steal messages the scheduler sent so far (None: not measured)."""
        return None

    def close(self) -> None:
        """Stop the workers."""


class HpcdistSystem(System):
    """hpcdist's :class:`~hpcdist.Client` in the current MPI world (or any backend)."""

    name = "hpcdist"

    def __init__(self, client: Any) -> None:
        self.client = client
        self.ranks = sorted(client.workers)
        # pinning to "worker 0" and "worker 1" needs two workers (the local backend has one)
        self.placement = len(self.ranks) >= 2

    def submit(self, fn: Callable, *args: Any, where: int | None = None) -> Any:
        workers = None if where is None else [self.ranks[where]]
        return self.client.submit(fn, *args, pure=False, workers=workers)

    def wait(self, handles: Sequence[Any]) -> None:
        from hpcdist import wait

        wait(handles)

    def gather(self, handles: Sequence[Any]) -> list[Any]:
        return self.client.gather(list(handles))

    def map_gather(self, fn: Callable, items: Iterable[Any]) -> list[Any]:
        return self.client.gather(self.client.map(fn, items, pure=False))

    # The runtime is imported in these methods only: a peer's process never loads it.

    def bytes_via_master(self) -> int | None:
        from hpcdist.runtime.client import counters

        traffic = counters(self.client)
        return traffic["bytes_in"] + traffic["bytes_out"]

    def steals(self) -> int | None:
        from hpcdist.runtime.client import counters

        return counters(self.client)["steals_sent"]

    def rank0_tables(self) -> dict[str, int] | None:
        from hpcdist.runtime.client import table_sizes

        return table_sizes(self.client)

    def pids(self) -> list[int]:
        from hpcdist.runtime.client import worker_pids

        reported = worker_pids(self.client)
        # thread and local workers report the driver's own pid: count each process once
        pids = [os.getpid(), *(reported[r] for r in self.ranks if reported.get(r))]
        return list(dict.fromkeys(pids))

    def close(self) -> None:
        self.client.close()


class ExecutorSystem(System):
    """A :class:`concurrent.futures.Executor` peer (ProcessPoolExecutor, mpi4py.futures).

    Futures passed as arguments are resolved on the driver, so data moves worker -> driver
    -> worker; :meth:`bytes_via_master` adds up the array bytes that made that trip (for a
    thread pool that trip is a reference, not a copy, but the bytes are counted the same way).

    Args:
        name: column name.
        executor: the executor (already started).
        pids: returns the driver's and the workers' process ids.
    """

    def __init__(self, name: str, executor: cf.Executor, pids: Callable[[], list[int]]) -> None:
        self.name = name
        self.executor = executor
        self._pids = pids
        self._bytes = 0
        self._seen: set[int] = set()
        self._live: list[cf.Future] = []  # keeps ids in _seen unique

    def submit(self, fn: Callable, *args: Any, where: int | None = None) -> Any:
        resolved = tuple(self.value(a) if isinstance(a, cf.Future) else a for a in args)
        self._bytes += sum(_nbytes(a) for a in resolved)
        return self.executor.submit(fn, *resolved)

    def value(self, handle: Any) -> Any:
        result = handle.result()
        if id(handle) not in self._seen:
            self._seen.add(id(handle))
            self._live.append(handle)
            self._bytes += _nbytes(result)
        return result

    def map_gather(self, fn: Callable, items: Iterable[Any]) -> list[Any]:
        return list(self.executor.map(fn, items, chunksize=1))

    def bytes_via_master(self) -> int | None:
        return self._bytes

    def reset(self) -> None:
        """Forget the futures seen so far (between workloads, to free memory)."""
        self._seen.clear()
        self._live.clear()

    def pids(self) -> list[int]:
        return self._pids()

    def close(self) -> None:
        self.executor.shutdown(wait=True)


def process_pool(nworkers: int) -> ExecutorSystem:
    """The ``concurrent.futures.ProcessPoolExecutor`` peer with ``nworkers`` processes."""
    ex = cf.ProcessPoolExecutor(nworkers)
    return ExecutorSystem("processpool", ex, lambda: [os.getpid(), *children_of(os.getpid())])


def thread_pool(nworkers: int) -> ExecutorSystem:
    """The ``concurrent.futures.ThreadPoolExecutor`` peer with ``nworkers`` threads."""
    ex = cf.ThreadPoolExecutor(nworkers)
    return ExecutorSystem("threadpool", ex, lambda: [os.getpid()])
