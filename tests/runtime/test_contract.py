"""The Client contract: the same tests on every backend.

Collected directly, they run on the local, thread and process backends (the ``client``
fixture is parametrized). tests/runtime/test_contract_mpi.py runs this same file on rank 0
of real ``mpiexec -n 2`` and ``-n 4`` worlds (``HPCDIST_CONTRACT_ATTACHED=1``).

The ``local`` backend runs each call inline at submit time, so a few tests check what that
means instead (a future is done before anyone can cancel it or ask for data while it runs).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
import time

import numpy as np
import pytest

import hpcdist
from hpcdist.errors import RemoteTraceback


ATTACHED = os.environ.get("HPCDIST_CONTRACT_ATTACHED") == "1"


@pytest.fixture(scope="module", params=["attached"] if ATTACHED else ["local", "thread", "process"])
def client(request):
    if request.param == "attached":
        c = hpcdist.Client()  # attaches to the world started by `hpcdist exec`
    else:
        c = hpcdist.Client(backend=request.param, workers=3)
        assert c.backend == request.param
    yield c
    c.close()


def runs_inline(client):
    """True on the local backend: every call has run by the time submit() returns."""
    return client.backend == "local"


def inc(x):
    return x + 1


def add(*xs):
    return sum(xs)


def boom(x):
    raise ValueError(f"bad value {x}")


def slow(x, seconds=0.2):
    time.sleep(seconds)
    return x


def nested_total(data):
    return sum(data["a"]) + sum(v for v in data["b"].values())


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_submit_result(client):
    assert client.submit(inc, 1).result(timeout=10) == 2


def test_future_is_a_concurrent_future(client):
    fut = client.submit(inc, 10)
    assert isinstance(fut, cf.Future)
    done, not_done = cf.wait([fut], timeout=10)
    assert fut in done and not not_done
    assert fut.key.startswith("inc-")


def test_map_keeps_order(client):
    futures = client.map(inc, range(50))
    assert [f.result(timeout=10) for f in futures] == list(range(1, 51))


def test_map_several_iterables_and_kwargs(client):
    futures = client.map(add, [1, 2, 3], [10, 20, 30])
    assert client.gather(futures) == [11, 22, 33]


def test_futures_as_arguments_nested(client):
    a = client.map(inc, [1, 2])
    b = client.submit(inc, 5)
    total = client.submit(nested_total, {"a": a, "b": {"x": b, "y": 100}})
    assert total.result(timeout=10) == (2 + 3) + (6 + 100)


def test_chain_of_dependencies(client):
    x = client.submit(inc, 0)
    for _ in range(20):
        x = client.submit(inc, x)
    assert x.result(timeout=20) == 21


def test_pure_calls_share_a_key_impure_do_not(client):
    a, b = client.submit(inc, 41), client.submit(inc, 41)
    assert a.key == b.key
    c, d = client.submit(inc, 41, pure=False), client.submit(inc, 41, pure=False)
    assert c.key != d.key
    assert a.result(timeout=10) == b.result(timeout=10) == c.result(timeout=10) == 42


def test_explicit_key(client):
    fut = client.submit(inc, 1, key="my-key-1")
    assert fut.key == "my-key-1"
    assert fut.result(timeout=10) == 2


def test_gather_nested_structure(client):
    a, b = client.submit(inc, 1), client.submit(inc, 2)
    result = client.gather({"x": [a, (b, 7)], "y": a})
    assert result == {"x": [2, (3, 7)], "y": 2}


def test_remote_exception_keeps_type_message_and_traceback(client):
    fut = client.submit(boom, 3)
    with pytest.raises(ValueError, match="bad value 3") as info:
        fut.result(timeout=10)
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "rank" in str(cause) and "in boom" in str(cause)


def test_dependents_fail_with_same_error_independent_ones_run(client):
    bad = client.submit(boom, 4)
    dependent = client.submit(inc, bad)
    independent = client.submit(inc, 4)
    with pytest.raises(ValueError, match="bad value 4"):
        dependent.result(timeout=10)
    assert independent.result(timeout=10) == 5
    assert client.submit(inc, 100).result(timeout=10) == 101


def test_gather_errors_skip(client):
    futures = [client.submit(inc, 1), client.submit(boom, 2), client.submit(inc, 3)]
    assert client.gather(futures, errors="skip") == [2, 4]
    with pytest.raises(ValueError):
        client.gather(futures)


def test_numpy_roundtrip_and_worker_to_worker(client):
    arr = np.arange(1_000_000, dtype=np.float64)
    [data] = client.scatter([arr])
    doubled = client.submit(np.multiply, data, 2.0)
    total = client.submit(np.sum, doubled)
    assert total.result(timeout=20) == pytest.approx(2.0 * arr.sum())
    back = data.result(timeout=10)
    assert isinstance(back, np.ndarray) and np.array_equal(back, arr)


def test_scatter_list_spreads_over_workers(client):
    futures = client.scatter(list(range(client.nworkers * 2)))
    who = client.who_has(futures)
    ranks = {r for holders in who.values() for r in holders}
    assert ranks == set(client.workers)
    assert client.gather(futures) == list(range(client.nworkers * 2))


def test_scatter_broadcast_and_dict(client):
    fut = client.scatter({"k": 5}, broadcast=True)["k"]
    assert wait_until(lambda: len(client.who_has([fut])[fut.key]) == client.nworkers)
    assert client.submit(inc, fut).result(timeout=10) == 6


def test_workers_restriction(client):
    rank = max(client.workers)
    fut = client.submit(inc, 7, workers=[rank])
    assert fut.result(timeout=10) == 8
    assert client.who_has([fut]) == {fut.key: [rank]}
    host = client.workers[rank]["host"]
    by_host = client.submit(inc, 8, workers=host)
    assert by_host.result(timeout=10) == 9
    with pytest.raises(hpcdist.errors.HpcdistError, match="no worker"):
        client.submit(inc, 1, workers=[999])


def test_locality_runs_dependent_where_input_lives(client):
    rank = min(client.workers)
    [big] = client.scatter([np.ones(2_000_000)], workers=[rank])
    out = client.submit(np.sum, big)
    assert out.result(timeout=10) == 2_000_000
    assert client.who_has([out]) == {out.key: [rank]}


def test_who_has_and_has_what_agree(client):
    futures = client.map(inc, range(100, 110))
    client.gather(futures)
    who = client.who_has(futures)
    what = client.has_what()
    assert set(what) == set(client.workers)
    for key, ranks in who.items():
        assert ranks and all(key in what[r] for r in ranks)


def test_released_results_are_freed(client):
    fut = client.submit(inc, 12345, pure=False)
    key = fut.key
    fut.result(timeout=10)
    assert key in client.who_has()
    del fut
    assert wait_until(lambda: key not in client.who_has() and all(key not in k for k in client.has_what().values()))


def test_cancel_a_waiting_task(client):
    blocker = client.submit(slow, 1, 1.0, pure=False)
    dependent = client.submit(inc, blocker)
    if runs_inline(client):  # nothing ever waits: both ran inside submit()
        assert blocker.done() and dependent.done()
        assert not dependent.cancel() and dependent.result(timeout=5) == 2
        return
    assert dependent.cancel()
    assert dependent.cancelled()
    with pytest.raises(cf.CancelledError):
        dependent.result(timeout=5)
    assert blocker.result(timeout=10) == 1


def test_retries(client, tmp_path):
    marker = str(tmp_path / "attempts")

    def flaky(path):
        with open(path, "a") as f:
            f.write("x")
        with open(path) as f:
            if len(f.read()) < 3:
                raise RuntimeError("not yet")
        return "ok"

    assert client.submit(flaky, marker, retries=2).result(timeout=10) == "ok"
    with pytest.raises(RuntimeError, match="not yet"):
        client.submit(flaky, marker + "-2", retries=1).result(timeout=10)


def test_executor_map_and_shutdown(client):
    with client.get_executor() as ex:
        assert list(ex.map(inc, range(20))) == list(range(1, 21))
        fut = ex.submit(add, 1, 2, 3)
        assert fut.result(timeout=10) == 6


def test_as_completed_and_wait(client):
    futures = client.map(slow, [3, 1, 2], [0.3, 0.05, 0.15], pure=False)
    seen = [(f.key, r) for f, r in hpcdist.as_completed(futures, with_results=True)]
    assert sorted(r for _, r in seen) == [1, 2, 3]
    more = client.map(slow, [5, 6], [0.05, 1.0], pure=False)
    done, not_done = hpcdist.wait(more, return_when=hpcdist.runtime.client.FIRST_COMPLETED)
    assert len(done) >= 1
    hpcdist.wait(more)


def test_done_callback_may_call_result(client):
    got = []
    event = threading.Event()
    fut = client.submit(inc, 99)

    def callback(f):
        got.append(f.result())
        event.set()

    fut.add_done_callback(callback)
    assert event.wait(10)
    assert got == [100]


def test_busy_worker_still_serves_data(client):
    rank = min(client.workers)
    [arr] = client.scatter([np.arange(1000)], workers=[rank])
    busy = client.submit(slow, 0, 1.0, workers=[rank], pure=False)
    if runs_inline(client):  # the caller is the worker: the task ran inside submit()
        assert busy.done() and arr.result(timeout=5)[-1] == 999
        return
    start = time.monotonic()
    assert arr.result(timeout=5)[-1] == 999
    assert time.monotonic() - start < 0.9, "the data came only after the long task ended"
    busy.result(timeout=10)


def test_resubmitting_a_released_pure_key_computes_it_again(client):
    for round_ in range(20):
        fut = client.submit(inc, 777, key="resubmitted-key")
        assert fut.result(timeout=10) == 778
        del fut  # its FREE may still be batched when the same key is computed again
    again = client.submit(inc, 777, key="resubmitted-key")
    time.sleep(0.05)  # let every delayed FREE go out
    assert again.result(timeout=10) == 778
    # small results come from rank 0's cache: a dependent task proves the worker still holds it
    assert client.submit(inc, again, pure=False).result(timeout=10) == 779
