"""Every backend's world implements the declared World protocol, and queries go through methods."""

from concurrent.futures import Future as CFuture

import numpy as np
import pytest

from hpcdist.backends.local import LocalWorld
from hpcdist.runtime import messages as m
from hpcdist.runtime.client import Client, counters, worker_pids
from hpcdist.runtime.world import SchedulerWorld, World


def inc(x):
    return x + 1


@pytest.mark.parametrize("backend", ["local", "thread"])
def test_each_world_is_a_world_and_answers_queries(backend):
    with Client(backend=backend, workers=2) as client:
        world = client._world
        assert isinstance(world, World)
        assert isinstance(world, LocalWorld if backend == "local" else SchedulerWorld)
        fut = client.submit(inc, 1)
        assert fut.result(timeout=30) == 2
        holders = world.who_has([fut.key])
        assert set(holders) == {fut.key} and holders[fut.key]
        assert any(fut.key in keys for keys in world.has_what().values())
        assert world.running_keys() == set()  # nothing left running
        sizes = world.table_sizes()
        assert sizes and all(isinstance(v, int) for v in sizes.values())
        assert world.walltime_warning is client.walltime_warning


def test_the_scheduler_answers_only_its_declared_queries():
    with Client(backend="thread", workers=1) as client:
        cf = CFuture()
        client._world.send((m.QUERY, "crash", (), cf))
        with pytest.raises(Exception, match="unknown scheduler query 'crash'"):
            cf.result(timeout=30)


@pytest.mark.parametrize("backend", ["local", "thread"])
def test_each_world_counts_rank0_traffic_through_the_client_accessors(backend):
    with Client(backend=backend, workers=2) as client:
        before = counters(client)
        assert set(before) == {"bytes_in", "bytes_out", "steals_sent"}
        assert all(isinstance(v, int) and v >= 0 for v in before.values())
        fut = client.submit(np.ones, 1 << 16)
        assert fut.result(timeout=30).sum() == 1 << 16
        client.submit(np.sum, client.scatter(np.ones(1 << 16))).result(timeout=30)
        after = counters(client)
        if backend == "local":
            assert after == before  # no scheduler: nothing moves between ranks
        else:
            assert after["bytes_out"] > before["bytes_out"]  # the scattered array went out of rank 0
        assert set(worker_pids(client)) == set(client.workers)
