"""Workers hear of a dead peer (PEER_DOWN) and the user's on_worker_lost hook, on the process backend.

Real worker processes, killed for real; every test has a hard timeout.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import numpy as np
import pytest

import hpcdist
from hpcdist.runtime.client import worker_pids
from hpcdist.runtime.scheduling import policy

pytestmark = pytest.mark.timeout(90)


def _counted_array(log, n):
    """``arange(n)``, too large to ride along with its completion; each run appends to ``log``."""
    with open(log, "a") as fh:
        fh.write("run\n")
    return np.arange(n, dtype=np.float64)


def _wait_for(what, cond, bound=30.0):
    deadline = time.monotonic() + bound
    while not cond():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


def test_an_input_coming_from_a_peer_that_dies_is_asked_of_its_other_holder(tmp_path):
    log = tmp_path / "runs"
    n = 10_000
    with hpcdist.Client(backend="process", workers=3) as client:
        a, b, c = sorted(client.workers)
        data = client.submit(_counted_array, str(log), n, workers=[a], pure=False)
        assert client.submit(len, data, workers=[b]).result(timeout=30) == n  # b holds a copy too
        _wait_for("two holders", lambda: client.who_has([data])[data.key] == [a, b])
        # the holder the scheduler has send the input to c (all ranks on one host here)
        same_host = {a: "h", b: "h", c: "h"}.get
        sender = policy.pick_holder(policy.holder_order([a, b], c, same_host), c, same_host)
        other = a if sender == b else b
        pids = worker_pids(client)
        os.kill(pids[sender], signal.SIGSTOP)  # frozen: the input does not come from it
        later = client.submit(np.sum, data, workers=[c])
        time.sleep(0.5)
        os.kill(pids[sender], signal.SIGKILL)
        assert later.result(timeout=60) == float(np.arange(n).sum())
        assert log.read_text().count("run") == 1  # not recomputed: it came from the other holder
        assert list(client.lost_workers) == [sender] and other in client.workers


def test_on_worker_lost_is_called_once_per_lost_rank_on_the_callback_thread(caplog):
    calls, threads = [], []
    done = threading.Event()
    with hpcdist.Client(backend="process", workers=3) as client:

        def broken(rank, reason):
            raise RuntimeError("a broken hook")

        def hook(rank, reason):
            calls.append((rank, reason))
            threads.append(threading.current_thread().name)
            done.set()

        client.on_worker_lost(broken)  # logged, and the next hook still runs
        assert client.on_worker_lost(hook) is hook
        with pytest.raises(TypeError):
            client.on_worker_lost("not callable")
        assert client.submit(abs, -1).result(timeout=30) == 1
        victim = max(client.workers)
        with caplog.at_level(logging.ERROR, logger="hpcdist.runtime.losses"):
            os.kill(worker_pids(client)[victim], signal.SIGKILL)
            assert done.wait(30)
            assert client.submit(abs, -2).result(timeout=30) == 2
        [(rank, reason)] = calls
        assert rank == victim and reason == client.lost_workers[victim][0] and "signal 9" in reason
        assert threads == ["hpcdist-callbacks"]
    assert any("on_worker_lost hook" in r.getMessage() and "a broken hook" in r.exc_text for r in caplog.records
               if r.exc_text), caplog.records
