"""The dask.distributed peer: a LocalCluster of single-threaded worker processes."""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any, Callable, Iterable, Sequence

from hpcdist.bench.systems import System


class DaskSystem(System):
    """``distributed.Client`` on ``LocalCluster(n, threads_per_worker=1, processes=True)``."""

    name = "dask"
    placement = True

    def __init__(self, nworkers: int) -> None:
        distributed = importlib.import_module("distributed")
        self._distributed = distributed
        self.cluster = distributed.LocalCluster(
            n_workers=nworkers, threads_per_worker=1, processes=True,
            dashboard_address=None, silence_logs=logging.ERROR,
        )
        self.client = distributed.Client(self.cluster)
        self.client.wait_for_workers(nworkers)
        self.addrs = sorted(self.client.scheduler_info()["workers"])

    def submit(self, fn: Callable, *args: Any, where: int | None = None) -> Any:
        workers = None if where is None else [self.addrs[where]]
        return self.client.submit(fn, *args, pure=False, workers=workers)

    def wait(self, handles: Sequence[Any]) -> None:
        self._distributed.wait(list(handles))

    def gather(self, handles: Sequence[Any]) -> list[Any]:
        return self.client.gather(list(handles))

    def map_gather(self, fn: Callable, items: Iterable[Any]) -> list[Any]:
        return self.client.gather(self.client.map(fn, list(items), pure=False))

    def pids(self) -> list[int]:
        return [os.getpid(), *self.client.run(os.getpid).values()]

    def close(self) -> None:
        self.client.close()
        self.cluster.close()
