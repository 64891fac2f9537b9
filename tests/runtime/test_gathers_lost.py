"""A gather parked after a worker died fails with the task's own error if its key erred meanwhile."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from hpcdist.errors import RemoteTraceback
from hpcdist.runtime import serialize
from hpcdist.runtime.requests import Gathers


class _State:
    def __init__(self, states, errors):
        self.states, self.errors = states, errors

    def state_of(self, key):
        return self.states.get(key)

    def error_of(self, key):
        return self.errors.get(key)


def test_a_parked_gather_whose_key_erred_fails_with_the_tasks_own_error():
    gathers = Gathers(lambda rank, header, buffers=(): None)
    cfuture: Future = Future()
    gathers.parked.append((["x"], cfuture))
    error = (serialize.dumps(ValueError("the task's own"))[0], "Traceback: ...", 2, "host-a", 4)
    gathers.retry({}, _State({"x": "erred"}, {"x": error}))
    with pytest.raises(ValueError, match="the task's own") as info:
        cfuture.result(timeout=0)
    assert isinstance(info.value.__cause__, RemoteTraceback) and "rank 2 of 4" in str(info.value.__cause__)
    assert not gathers.parked
