"""A worker process that ends on purpose says why first, and the allowed-failures knob (process backend).

Real worker processes, ended for real; every test has a hard timeout. The MPI side (the goodbye
that beats the failure detector) is in test_mpi_loss.py.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import hpcdist
from hpcdist.errors import HpcdistError, KilledWorker
from hpcdist.runtime.client import worker_pids

pytestmark = pytest.mark.timeout(90)


def _exit3():
    os._exit(3)


def _square(x):
    return x * x


def _fork_a_child_that_exits():
    """A child forked by a task ends with os._exit (as multiprocessing's fork children do)."""
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
    return os.getpid()


def _exit4_from_a_thread():
    threading.Thread(target=os._exit, kwargs={"status": 4}, name="killer").start()
    time.sleep(30)


def _wait_lost(client, rank, bound=30.0):
    deadline = time.monotonic() + bound
    while rank not in client.lost_workers:
        assert time.monotonic() < deadline, f"the loss of rank {rank} was never noticed"
        time.sleep(0.02)


def test_a_task_that_calls_os_exit_is_lost_with_its_goodbye_naming_the_task():
    with hpcdist.Client(backend="process", workers=2) as client:
        doomed = client.submit(_exit3, key="doomed", workers=[1], allow_other_workers=False)
        with pytest.raises(Exception):
            doomed.result(timeout=60)  # it kills every worker it runs on: at the third death KilledWorker
        reason, _ = client.lost_workers[1]
        assert "exit status 3" in reason and "the task 'doomed' called os._exit(3)" in reason, reason


def test_os_exit_from_another_thread_names_the_thread_and_the_task_that_ran():
    with hpcdist.Client(backend="process", workers=2) as client:
        client.submit(_exit4_from_a_thread, key="slowpoke", workers=[1], allow_other_workers=False)
        _wait_lost(client, 1)
        reason, _ = client.lost_workers[1]
        assert "exit status 4" in reason and "os._exit(4) was called in thread 'killer' while task 'slowpoke' ran" in reason


def test_sigterm_to_a_worker_process_says_so_and_it_still_dies_of_it():
    with hpcdist.Client(backend="process", workers=2) as client:
        assert client.submit(abs, -1).result(timeout=30) == 1
        victim = 2
        os.kill(worker_pids(client)[victim], signal.SIGTERM)
        _wait_lost(client, victim)
        reason, _ = client.lost_workers[victim]
        assert "killed by signal 15" in reason and "received SIGTERM" in reason, reason
        assert client.gather(client.map(_square, range(6))) == [i * i for i in range(6)]


def test_a_child_forked_by_a_task_says_nothing_for_its_worker():
    with hpcdist.Client(backend="process", workers=2) as client:
        pid = client.submit(_fork_a_child_that_exits, workers=[1], allow_other_workers=False).result(timeout=30)
        assert 1 not in client.lost_workers
        os.kill(pid, signal.SIGKILL)
        _wait_lost(client, 1)
        reason, _ = client.lost_workers[1]
        assert "signal 9" in reason and "the connection was lost" in reason and "os._exit" not in reason, reason


def test_allowed_failures_1_fails_a_task_that_os_exits_at_its_first_death(monkeypatch):
    monkeypatch.setenv("HPCDIST_ALLOWED_FAILURES", "1")
    with hpcdist.Client(backend="process", workers=2) as client:
        doomed = client.submit(_exit3, key="doomed")
        with pytest.raises(KilledWorker, match="doomed") as info:
            doomed.result(timeout=60)
        assert len(info.value.ranks) == 1 and len(client.lost_workers) == 1, (info.value, client.lost_workers)
        assert client.nworkers == 1  # the other worker was never tried
        assert client.gather(client.map(_square, range(4))) == [0, 1, 4, 9]


@pytest.mark.parametrize("text", ["0", "-2", "1.5", "many"])
def test_a_bad_HPCDIST_ALLOWED_FAILURES_fails_before_any_worker_starts(monkeypatch, text):
    monkeypatch.setenv("HPCDIST_ALLOWED_FAILURES", text)
    with pytest.raises(HpcdistError, match="HPCDIST_ALLOWED_FAILURES"):
        hpcdist.Client(backend="process", workers=1)
