"""After cancel() of a running task, new work does not wait behind it (real worlds).

Collected directly: thread and process backends; test_trust_mpi.py runs this file on rank 0 of
``mpiexec -n 3`` (``HPCDIST_TRUST_ATTACHED=1``). The scheduler-state cases are in
test_state_cancel.py.
"""

from __future__ import annotations

import os
import time

import pytest

import hpcdist

ATTACHED = os.environ.get("HPCDIST_TRUST_ATTACHED") == "1"


@pytest.fixture(params=["attached"] if ATTACHED else ["thread", "process"])
def client(request):
    c = hpcdist.Client() if request.param == "attached" else hpcdist.Client(backend=request.param, workers=2)
    yield c
    if request.param != "attached":
        c.close()


def slow(seconds):
    time.sleep(seconds)
    return seconds


def test_next_tasks_do_not_wait_behind_a_cancelled_running_task(client):
    assert len(client.workers) == 2
    running = client.submit(slow, 25, pure=False)
    time.sleep(1)  # let it start
    client.cancel([running])
    # the worker running it is busy for ~25 s more: these go to the other one
    for _ in range(3):  # one at a time: each is placed while the scheduler sees both workers without work
        assert client.submit(slow, 0.01, pure=False).result(timeout=10) == 0.01  # TimeoutError: it waited
    futures = [client.submit(slow, 0.01, pure=False) for _ in range(4)]
    assert [f.result(timeout=15) for f in futures] == [0.01] * 4
