"""hpcdist's side of the concurrent.futures contract (issue "Trust"), on every backend.

Argument checks in the caller's thread (a bad argument never reaches the scheduler's loop),
``gather`` over any iterable, ``as_completed`` dropping what it yielded, one
``CancelledError``, Client.submit's keywords, done callbacks of finished tasks logged as
concurrent.futures logs them. Run under ``mpiexec -n 4`` too (test_cpy_mpi.py).
"""

import concurrent.futures as cf
import logging
import math
import threading

import pytest
from cpy_util import create_future, needs_background

import hpcdist


def inc(x):
    return x + 1


def capture(*args, **kwargs):
    return args, kwargs


def blob(i, size=200_000):
    return bytes([i % 256]) * size  # too big to come along with the completion: held on a worker


# (name, call(client, future, executor), exception type) -- every public entry point
BAD_CALLS = [
    ("result timeout str", lambda c, f, ex: f.result(timeout="10 ms"), TypeError),
    ("result timeout list", lambda c, f, ex: f.result(timeout=[1]), TypeError),
    ("result timeout bool", lambda c, f, ex: f.result(timeout=True), TypeError),
    ("result timeout nan", lambda c, f, ex: f.result(timeout=math.nan), ValueError),
    ("exception timeout str", lambda c, f, ex: f.exception(timeout="1s"), TypeError),
    ("add_done_callback not callable", lambda c, f, ex: f.add_done_callback(5), TypeError),
    ("wait timeout str", lambda c, f, ex: hpcdist.wait([f], timeout="1"), TypeError),
    ("wait return_when", lambda c, f, ex: hpcdist.wait([f], return_when="SOMETIMES"), ValueError),
    ("wait one future", lambda c, f, ex: hpcdist.wait(f), TypeError),
    ("wait not futures", lambda c, f, ex: hpcdist.wait([f, 1]), TypeError),
    ("as_completed timeout str", lambda c, f, ex: hpcdist.as_completed([f], timeout="1"), TypeError),
    ("as_completed not iterable", lambda c, f, ex: hpcdist.as_completed(5), TypeError),
    ("as_completed not futures", lambda c, f, ex: hpcdist.as_completed(["x"]), TypeError),
    ("as_completed with_results", lambda c, f, ex: hpcdist.as_completed([f], with_results="yes"), TypeError),
    ("submit not callable", lambda c, f, ex: c.submit(5), TypeError),
    ("submit key int", lambda c, f, ex: c.submit(inc, 1, key=5), TypeError),
    ("submit key empty", lambda c, f, ex: c.submit(inc, 1, key=""), ValueError),
    ("submit pure str", lambda c, f, ex: c.submit(inc, 1, pure="yes"), TypeError),
    ("submit retries negative", lambda c, f, ex: c.submit(inc, 1, retries=-1), ValueError),
    ("submit retries float", lambda c, f, ex: c.submit(inc, 1, retries=1.5), TypeError),
    ("submit allow_other_workers", lambda c, f, ex: c.submit(inc, 1, allow_other_workers=None), TypeError),
    ("submit workers float", lambda c, f, ex: c.submit(inc, 1, workers=3.5), TypeError),
    ("submit workers [None]", lambda c, f, ex: c.submit(inc, 1, workers=[None]), TypeError),
    ("map not iterable", lambda c, f, ex: c.map(inc, 5), TypeError),
    ("map not callable", lambda c, f, ex: c.map(5, [1]), TypeError),
    ("map keys not str", lambda c, f, ex: c.map(inc, [1], key=[1]), TypeError),
    ("map keys count", lambda c, f, ex: c.map(inc, [1, 2], key=["a"]), ValueError),
    ("map key int", lambda c, f, ex: c.map(inc, [1], key=7), TypeError),
    ("map retries", lambda c, f, ex: c.map(inc, [1], retries=-2), ValueError),
    ("gather errors", lambda c, f, ex: c.gather([f], errors="ignore"), ValueError),
    ("gather plain future", lambda c, f, ex: c.gather([hpcdist.Future()]), ValueError),
    ("scatter broadcast", lambda c, f, ex: c.scatter([1], broadcast="yes"), TypeError),
    ("scatter workers", lambda c, f, ex: c.scatter([1], workers=2.5), TypeError),
    ("cancel int", lambda c, f, ex: c.cancel(5), TypeError),
    ("cancel list of str", lambda c, f, ex: c.cancel(["key"]), TypeError),
    ("who_has int", lambda c, f, ex: c.who_has(5), TypeError),
    ("who_has mixed", lambda c, f, ex: c.who_has([f, "key"]), TypeError),
    ("executor submit not callable", lambda c, f, ex: ex.submit(5), TypeError),
    ("executor map timeout", lambda c, f, ex: ex.map(inc, [1], timeout="1"), TypeError),
    ("executor map chunksize 0", lambda c, f, ex: ex.map(inc, [1], chunksize=0), ValueError),
    ("executor map not callable", lambda c, f, ex: ex.map(5, [1]), TypeError),
]


@pytest.mark.parametrize("which", ["pending", "finished"])
@pytest.mark.parametrize("name,call,error", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_arguments_raise_in_the_caller(client, name, call, error, which):
    fut = create_future(client) if which == "pending" else client.submit(inc, 1, pure=False)
    ex = client.get_executor()
    with pytest.raises(error):
        call(client, fut, ex)
    # nothing reached the scheduler's loop: the world still answers, at once
    assert client.submit(inc, 41, pure=False).result(timeout=30) == 42
    assert fut.cancel() or fut.result(timeout=30) == 2


def test_good_timeouts_are_accepted(client):
    import numpy as np

    fut = client.submit(inc, 1, pure=False)
    for timeout in (None, 30, 30.0, np.float64(30), math.inf):
        assert fut.result(timeout=timeout) == 2
    pending = create_future(client)
    for timeout in (0, -1, 0.01, np.int64(0)):
        with pytest.raises(TimeoutError):
            pending.result(timeout=timeout)


def _gen(fs):
    yield from fs


GATHER_SHAPES = [
    ("list", lambda fs: list(fs), [1, 2, 3]),
    ("tuple", lambda fs: tuple(fs), (1, 2, 3)),
    ("iterator", lambda fs: iter(fs), [1, 2, 3]),
    ("generator", lambda fs: _gen(fs), [1, 2, 3]),
    ("generator expression", lambda fs: (f for f in fs), [1, 2, 3]),
    ("map object", lambda fs: map(lambda f: f, fs), [1, 2, 3]),
    ("dict values", lambda fs: {i: f for i, f in enumerate(fs)}.values(), [1, 2, 3]),
    ("set", lambda fs: set(fs), {1, 2, 3}),
    ("frozenset", lambda fs: frozenset(fs), frozenset({1, 2, 3})),
    ("dict", lambda fs: {"a": fs[0], "b": fs[1:]}, {"a": 1, "b": [2, 3]}),
    ("nested", lambda fs: [fs[0], (fs[1], [fs[2]]), {"x": 7}], [1, (2, [3]), {"x": 7}]),
    ("one future", lambda fs: fs[1], 2),
    ("empty generator", lambda fs: (f for f in []), []),
]


@pytest.mark.parametrize("name,shape,expected", GATHER_SHAPES, ids=[s[0] for s in GATHER_SHAPES])
def test_gather_returns_values_for_any_iterable(client, name, shape, expected):
    fs = client.map(inc, [0, 1, 2], pure=False)
    got = client.gather(shape(fs))
    assert got == expected and type(got) is type(expected)


def test_gather_skips_failed_items_of_a_generator(client):
    fs = [client.submit(inc, 1, pure=False), client.submit(inc, "x", pure=False)]
    assert client.gather((f for f in fs), errors="skip") == [2]
    with pytest.raises(TypeError):
        client.gather(iter(fs))


def test_one_cancelled_error_from_result_and_gather(client):
    assert hpcdist.errors.CancelledError is cf.CancelledError
    fut = create_future(client)
    assert fut.cancel()
    with pytest.raises(cf.CancelledError):
        fut.result(timeout=5)
    with pytest.raises(cf.CancelledError):
        client.gather([fut])
    with pytest.raises(cf.CancelledError):
        client.gather(f for f in [fut])


def test_a_pending_task_can_be_cancelled_and_the_scheduler_notifies(client, create_event):
    needs_background(client)
    event = create_event()
    blocker = client.submit(event.wait, pure=False)
    dependent = client.submit(inc, blocker)
    assert dependent.cancel() and dependent.cancelled()
    done, not_done = hpcdist.wait([dependent], timeout=30)  # notified by the scheduler's answer
    assert done == {dependent}
    with pytest.raises(cf.CancelledError):
        client.gather([dependent])
    event.set()
    assert blocker.result(timeout=30) is True
    assert not blocker.cancel()  # finished: cancel() returns False


def test_client_submit_fn_is_positional_only(client):
    assert client.submit(capture, 1, fn=2, self=3).result(timeout=30) == ((1,), {"fn": 2, "self": 3})
    assert client.map(capture, [1], fn=[2])[0].result(timeout=30) == ((1,), {"fn": [2]})
    with pytest.raises(TypeError):
        client.submit(fn=capture)


def test_as_completed_drops_each_future_once_yielded(client):
    n = 12
    fs = client.map(blob, range(n), pure=False)
    keys = {f.key for f in fs}
    loop = hpcdist.as_completed(fs)
    del fs
    held = []
    i = 0
    for fut in loop:  # not enumerate(): its cached result tuple would hold the last future
        assert len(fut.result(timeout=30)) == 200_000
        del fut
        i += 1
        if i == n // 2:  # releases are asynchronous: wait for them, with the loop still going
            held.append(_wait_until(lambda: len(keys & set(client.who_has())) <= n - n // 2))
    assert held == [True]
    assert _wait_until(lambda: not keys & set(client.who_has()))


def _wait_until(predicate, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_raising_callback_of_a_task_is_logged_as_concurrent_futures_does(client):
    records = []
    seen = threading.Event()

    class Handler(logging.Handler):
        def emit(self, record):
            records.append(record)
            seen.set()

    def raising(f):
        raise RuntimeError("doh!")

    ran = threading.Event()
    handler = Handler()
    logger = logging.getLogger("concurrent.futures")
    logger.addHandler(handler)
    try:
        fut = client.submit(inc, 5, pure=False)
        fut.add_done_callback(raising)
        fut.add_done_callback(lambda f: ran.set())
        assert seen.wait(30) and ran.wait(30)
    finally:
        logger.removeHandler(handler)
    assert records[0].getMessage().startswith("exception calling callback for <Future at 0x")
    assert records[0].exc_info[0] is RuntimeError
