"""The process backend survives a dead worker: its work goes to the survivors, which keep working.

Real worker processes, killed for real; every test has a hard timeout.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

import hpcdist
from hpcdist.errors import WorkerLost
from hpcdist.runtime.client import worker_pids

pytestmark = pytest.mark.timeout(90)


def _square(x):
    return x * x


def _die_once(marker, how, x):
    """Kill this worker process the first time (``marker`` does not exist yet), else ``x * 10``."""
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        if how == "sigkill":
            os.kill(os.getpid(), 9)
        os._exit(3)
    return x * 10


def _counted_array(log, n):
    """``arange(n)``, too large to ride along with its completion; each run appends to ``log``."""
    with open(log, "a") as fh:
        fh.write("run\n")
    return np.arange(n, dtype=np.float64)


def _wait_lost(client, rank, bound=30.0):
    deadline = time.monotonic() + bound
    while rank not in client.lost_workers:
        assert time.monotonic() < deadline, f"the loss of rank {rank} was never noticed"
        time.sleep(0.02)


def _survivors_work(client, tag):
    futures = client.map(_square, range(12), key=[f"{tag}-{i}" for i in range(12)])
    assert client.gather(futures) == [i * i for i in range(12)]


def test_an_idle_worker_killed_by_sigkill_is_dropped_and_the_rest_go_on(capfd):
    with hpcdist.Client(backend="process", workers=3) as client:
        assert client.submit(abs, -1).result(timeout=30) == 1
        pids = worker_pids(client)
        victim = max(pids)
        os.kill(pids[victim], signal.SIGKILL)
        _wait_lost(client, victim)
        assert client.nworkers == 2 and victim not in client.workers
        reason, when = client.lost_workers[victim]
        assert f"rank {victim}" in reason and "signal 9" in reason and when <= time.time()
        _survivors_work(client, "idle")
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "hpcdist: lost" in line]
    assert len(lines) == 1 and f"rank {victim}" in lines[0] and "idle" in lines[0], err


@pytest.mark.parametrize("how, status", [("sigkill", "signal 9"), ("exit", "exit status 3")])
def test_a_worker_that_dies_inside_a_task_has_it_rerun_elsewhere(tmp_path, capfd, how, status):
    marker = str(tmp_path / "died")
    with hpcdist.Client(backend="process", workers=2) as client:
        fatal = client.submit(_die_once, marker, how, 7, pure=False)
        others = client.map(_square, range(8), key=[f"before-{i}" for i in range(8)])
        assert fatal.result(timeout=60) == 70  # rerun on the survivor, which did not die
        assert client.gather(others) == [i * i for i in range(8)]
        assert os.path.exists(marker)
        [(rank, (reason, _))] = client.lost_workers.items()
        assert status in reason and client.nworkers == 1 and rank not in client.workers
        _survivors_work(client, f"after-{how}")
    lines = [line for line in capfd.readouterr().err.splitlines() if "hpcdist: lost" in line]
    assert len(lines) == 1 and fatal.key in lines[0]  # what it was running


def test_the_only_copy_of_an_input_is_recomputed_for_a_later_task(tmp_path):
    log = tmp_path / "runs"
    n = 10_000
    with hpcdist.Client(backend="process", workers=2) as client:
        ranks = sorted(client.workers)
        data = client.submit(_counted_array, str(log), n, workers=[ranks[0]], allow_other_workers=True, pure=False)
        hpcdist.wait([data], timeout=30)
        assert client.who_has([data])[data.key] == [ranks[0]]
        os.kill(worker_pids(client)[ranks[0]], signal.SIGKILL)
        # asked before or after the loss is noticed: it waits for the recompute either way
        assert float(np.sum(data.result(timeout=60))) == float(np.arange(n).sum())
        later = client.submit(np.sum, data)
        assert later.result(timeout=60) == float(np.arange(n).sum())
        assert log.read_text().count("run") == 2  # computed, lost with rank 1, computed again
        assert list(client.lost_workers) == [ranks[0]] and client.who_has([data])[data.key] == [ranks[1]]
        _survivors_work(client, "recomputed")


def test_when_every_worker_is_gone_futures_fail_with_worker_lost():
    client = hpcdist.Client(backend="process", workers=2)
    try:
        slow = client.submit(time.sleep, 60, pure=False)
        queued = client.map(_square, range(4), key=[f"gone-{i}" for i in range(4)])
        for pid in worker_pids(client).values():
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(WorkerLost):
            slow.result(timeout=30)
        for fut in queued:
            with pytest.raises(WorkerLost):
                fut.result(timeout=30)
        assert client.nworkers == 0 and len(client.lost_workers) == 2
        with pytest.raises(WorkerLost):
            client.submit(abs, -1).result(timeout=30)
    finally:
        client.close()


def test_a_fetch_in_flight_from_a_worker_that_dies_does_not_hang(tmp_path):
    log = tmp_path / "runs"
    n = 10_000
    with hpcdist.Client(backend="process", workers=3) as client:
        a, b, c = sorted(client.workers)
        data = client.submit(_counted_array, str(log), n, workers=[a], allow_other_workers=True, pure=False)
        hpcdist.wait([data], timeout=30)
        pids = worker_pids(client)
        os.kill(pids[a], signal.SIGSTOP)  # frozen: b's request for the input stays unanswered
        later = client.submit(np.sum, data, workers=[b])
        time.sleep(0.5)
        os.kill(pids[a], signal.SIGKILL)
        assert later.result(timeout=60) == float(np.arange(n).sum())
        assert log.read_text().count("run") == 2
        _survivors_work(client, "fetch")
