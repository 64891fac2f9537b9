"""The ``thread`` backend: worker threads in this process, over the in-process transport."""

from __future__ import annotations

import threading
import time

from hpcdist.errors import HpcdistError
from hpcdist.runtime.running import cores
from hpcdist.runtime.serve import SHUTDOWN_TASK_GRACE, run_worker
from hpcdist.runtime.world import SchedulerWorld, startup_timeout
from hpcdist.transports.inproc import InprocHub


def start(n_workers: int | None = None) -> SchedulerWorld:
    """Start ``n_workers`` worker threads (default: one per core) around rank 0's scheduler.

    Raises:
        HpcdistError: fewer than one worker, or a bad ``HPCDIST_STARTUP_TIMEOUT``.
    """
    n_workers = n_workers or cores()
    if n_workers < 1:
        raise HpcdistError(f"the thread backend needs at least 1 worker, got {n_workers}")
    timeout = startup_timeout()  # a bad setting fails before any worker starts
    hub = InprocHub(n_workers + 1)
    threads = []
    for rank in range(1, n_workers + 1):
        t = threading.Thread(target=run_worker, args=(hub.endpoint(rank),), name=f"hpcdist-worker-{rank}", daemon=True)
        t.start()
        threads.append(t)

    def join() -> None:
        # as a worker process does, abandon a task still running after the grace period
        # (its daemon thread runs on until it returns or the process exits)
        deadline = time.monotonic() + SHUTDOWN_TASK_GRACE
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    try:
        return SchedulerWorld(hub.endpoint(0), "thread", join, timeout)
    except BaseException:
        hub.endpoint(0).abort(1)  # the worker threads end instead of waiting for ever
        join()
        raise
