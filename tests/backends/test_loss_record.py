"""What a loss cost, said by rank 0: its log line and ``client.recoveries``, on the process backend.

Real worker processes, killed for real (SIGKILL); every test has a hard timeout.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

import hpcdist
from hpcdist.runtime.client import worker_pids
from hpcdist.runtime.losses import WorkerLoss

pytestmark = pytest.mark.timeout(90)


def _array(n):
    return np.arange(n, dtype=np.float64)  # too large to ride along with its completion


def _sleep_the_first_time(marker):
    """Sleep for a minute the first time (``marker`` does not exist yet), else return at once."""
    import os
    import time

    if not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(60)
    return "ran again"


def _wait(predicate, what, bound=30.0):
    deadline = time.monotonic() + bound
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _lost_lines(err):
    return [line for line in err.splitlines() if "hpcdist: lost" in line]


def test_a_loss_is_logged_and_recorded_with_what_was_running_recomputed_and_erred(tmp_path, capfd):
    marker = str(tmp_path / "slept")
    hooked = []
    with hpcdist.Client(backend="process", workers=2) as client:
        victim, other = sorted(client.workers)
        data = client.submit(_array, 10_000, workers=[victim], allow_other_workers=True, key="data")
        x = client.scatter(5, workers=[victim])
        y = client.submit(abs, x, key="y", workers=[victim])
        hpcdist.wait([data, y], timeout=30)
        assert client.who_has([data, y]) == {"data": [victim], "y": [victim]}
        slow = client.submit(_sleep_the_first_time, marker, workers=[victim], allow_other_workers=True, key="slow")
        _wait(lambda: os.path.exists(marker) and "slow" in client.running_keys(), "slow never started")
        client.on_worker_lost(lambda rank, reason: hooked.append((rank, reason, client.recoveries)))
        pid = worker_pids(client)[victim]
        os.kill(pid, signal.SIGKILL)
        assert slow.result(timeout=60) == "ran again"  # put back, on the survivor
        assert float(data.result(timeout=60).sum()) == float(np.arange(10_000).sum())  # recomputed
        _wait(lambda: hooked, "the on_worker_lost hook was never called")
        [rec] = client.recoveries
        assert type(rec) is WorkerLoss and (rec.rank, rec.pid) == (victim, pid)
        assert rec.host == client.workers[other]["host"] and rec.workers_left == 1
        assert (rec.reason, rec.time) == client.lost_workers[victim]  # lost_workers keeps its shape
        assert (rec.running, rec.deaths, rec.requeued) == (("slow",), (1,), ("slow",))
        assert rec.recomputed == ("data",)
        assert rec.erred == tuple(sorted((x.key, "y")))  # scattered, and computed from it: no lineage
        assert (rec.n_requeued, rec.n_recomputed, rec.n_erred) == (1, 1, 2)
        [(rank, reason, seen)] = hooked  # callback(rank, reason) as before; the record is there by then
        assert (rank, reason) == (victim, rec.reason) and seen == [rec]
        client.recoveries.clear()  # a copy: the client's record stays
        assert client.recoveries == [rec]
    [line] = _lost_lines(capfd.readouterr().err)
    stamp = time.strftime("%H:%M:%S", time.localtime(rec.time))
    assert line.startswith(f"hpcdist: lost rank {victim} (pid {pid}, host {rec.host}) at {stamp}: {rec.reason}; ")
    assert line.endswith(f"; it was running 'slow' (1 worker death(s) running it); put back 1 task(s); "
                         f"recomputing 1 key(s): data; erred 2 key(s): {', '.join(rec.erred)}; 1 worker(s) left")


def test_an_idle_worker_costs_nothing_and_says_so(capfd):
    with hpcdist.Client(backend="process", workers=3) as client:
        assert client.submit(abs, -1, key="one").result(timeout=30) == 1
        victim = max(r for r in client.workers if "one" not in client.has_what().get(r, []))
        os.kill(worker_pids(client)[victim], signal.SIGKILL)
        _wait(lambda: client.recoveries, "the loss was never noticed")
        [rec] = client.recoveries
        assert rec.rank == victim and rec.running == rec.requeued == rec.recomputed == rec.erred == ()
        assert rec.n_requeued == rec.n_recomputed == rec.n_erred == 0 and rec.workers_left == 2
    [line] = _lost_lines(capfd.readouterr().err)
    assert line.endswith(f"{rec.reason}; idle; 2 worker(s) left"), line


def test_a_large_loss_names_the_first_keys_and_counts_them_all(capfd):
    n = 40
    with hpcdist.Client(backend="process", workers=2) as client:
        victim = min(client.workers)
        held = client.map(_array, [10_000] * n, key=[f"held-{i:02d}" for i in range(n)], workers=[victim],
                          allow_other_workers=True)
        hpcdist.wait(held, timeout=30)
        os.kill(worker_pids(client)[victim], signal.SIGKILL)
        assert all(float(f.result(timeout=60).sum()) == float(np.arange(10_000).sum()) for f in held)
        [rec] = client.recoveries
        assert rec.n_recomputed == n and rec.recomputed == tuple(f"held-{i:02d}" for i in range(n))
    [line] = _lost_lines(capfd.readouterr().err)
    shown = ", ".join(f"held-{i:02d}" for i in range(10))
    assert f"; recomputing {n} key(s): {shown} (+{n - 10} more); " in line, line
