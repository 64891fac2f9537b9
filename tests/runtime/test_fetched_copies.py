"""The copies a worker fetched belong to every task queued there, not to the one whose report carries them.

A worker reports the inputs it fetched with the next task it finishes or fails, whichever task that
is. When that task failed, rank 0 used to free those copies ("not worth keeping"): a task queued
behind it that needed them then ran without its input (KeyError on the worker). Seen first as a race
in the soak of a worker's death, where the failure was a PeerLost of a task that needed the lost
worker's data; shown here without any death.
"""

from __future__ import annotations

import time

import pytest

import hpcdist

pytestmark = pytest.mark.timeout(60)


def _value(i):
    return i


def _fail_late():
    time.sleep(0.5)
    raise ValueError("fails on purpose")


def _nap():
    time.sleep(0.4)
    return 0


def _add(a, b):
    return a + b


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_failing_task_does_not_take_the_inputs_of_the_next_one(backend):
    with hpcdist.Client(backend=backend, workers=2) as client:
        k = client.submit(_value, 1, workers=[2])
        l = client.submit(_value, 2, workers=[2])
        # on rank 1: the failure, then a nap (time for a free to arrive), then the task that fetched
        # k and l from rank 2 while the first one ran, and whose copies the failure's report carries
        bad = client.submit(_fail_late, workers=[1])
        nap = client.submit(_nap, workers=[1])
        total = client.submit(_add, k, l, workers=[1])
        assert total.result(timeout=30) == 3
        assert nap.result(timeout=30) == 0
        with pytest.raises(ValueError, match="fails on purpose"):
            bad.result(timeout=30)
        # the copies rank 1 made are known to rank 0 (so it frees them when k and l go)
        assert {key: sorted(ranks) for key, ranks in client.who_has([k, l]).items()} == {k.key: [1, 2], l.key: [1, 2]}
