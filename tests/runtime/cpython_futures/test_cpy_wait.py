"""CPython's WaitTests and AsCompletedTests (Lib/test/test_concurrent_futures: 3.11's single
file, 3.12's test_wait.py and test_as_completed.py), ported to hpcdist on every backend.

Ported from CPython's test suite (Python Software Foundation License); the assertions are
CPython's. Each test runs with the standard library's ``wait``/``as_completed`` and with
hpcdist's (the ``api`` fixture), on futures of ``Client.get_executor()``; the module-level
futures come from the ``fixed`` fixture (finished by set_result/set_exception, or by real
tasks). Events are file events, as tasks run on other ranks. test_duplicate_futures sleeps
0.3 s instead of 2 s, test_future_times_out's task 0.5 s instead of 1 s.

Dropped: nothing. ThreadPoolWaitTests.test_pending_calls_race runs on every backend; its
``setswitchinterval(1e-6)`` is kept.
"""

import itertools
import sys
import threading
import time
import weakref
from concurrent import futures
from concurrent.futures._base import CANCELLED_AND_NOTIFIED, FINISHED

import pytest
from cpy_util import create_future, gc_collect, needs_background

import hpcdist


def mul(x, y):
    return x * y


def wait_and_raise(e):
    e.wait()
    raise Exception('this is an exception')


@pytest.fixture(params=["stdlib", "hpcdist"])
def api(request):
    return futures if request.param == "stdlib" else hpcdist


# ---- WaitTests ------------------------------------------------------------------------------

def test_20369(executor, api):
    # See https://bugs.python.org/issue20369
    future = executor.submit(mul, 1, 2)
    done, not_done = api.wait([future, future], return_when=futures.ALL_COMPLETED)
    assert {future} == done
    assert set() == not_done


def test_first_completed(client, executor, api, fixed, create_event):
    needs_background(client)
    event = create_event()
    future1 = executor.submit(mul, 21, 2)
    future2 = executor.submit(event.wait)

    try:
        done, not_done = api.wait([fixed.CANCELLED_FUTURE, future1, future2], return_when=futures.FIRST_COMPLETED)

        assert set([future1]) == done
        assert set([fixed.CANCELLED_FUTURE, future2]) == not_done
    finally:
        event.set()
    future2.result()  # wait for job to finish


def test_first_completed_some_already_completed(client, executor, api, fixed, create_event):
    needs_background(client)
    event = create_event()
    future1 = executor.submit(event.wait)

    try:
        finished, pending = api.wait([fixed.CANCELLED_AND_NOTIFIED_FUTURE, fixed.SUCCESSFUL_FUTURE, future1],
                                     return_when=futures.FIRST_COMPLETED)

        assert set([fixed.CANCELLED_AND_NOTIFIED_FUTURE, fixed.SUCCESSFUL_FUTURE]) == finished
        assert set([future1]) == pending
    finally:
        event.set()
    future1.result()  # wait for job to finish


def test_first_exception(client, executor, api, create_event):
    needs_background(client)
    event1 = create_event()
    event2 = create_event()
    try:
        future1 = executor.submit(mul, 2, 21)
        future2 = executor.submit(wait_and_raise, event1)
        future3 = executor.submit(event2.wait)

        # Ensure that future1 is completed before future2 finishes
        def wait_for_future1():
            future1.result()
            event1.set()

        t = threading.Thread(target=wait_for_future1)
        t.start()

        finished, pending = api.wait([future1, future2, future3], return_when=futures.FIRST_EXCEPTION)

        assert set([future1, future2]) == finished
        assert set([future3]) == pending

        t.join()
    finally:
        event1.set()
        event2.set()
    future3.result()  # wait for job to finish


def test_first_exception_some_already_complete(client, executor, api, fixed, create_event):
    needs_background(client)
    event = create_event()
    future1 = executor.submit(divmod, 21, 0)
    future2 = executor.submit(event.wait)

    try:
        finished, pending = api.wait(
            [fixed.SUCCESSFUL_FUTURE, fixed.CANCELLED_FUTURE, fixed.CANCELLED_AND_NOTIFIED_FUTURE, future1, future2],
            return_when=futures.FIRST_EXCEPTION)

        assert set([fixed.SUCCESSFUL_FUTURE, fixed.CANCELLED_AND_NOTIFIED_FUTURE, future1]) == finished
        assert set([fixed.CANCELLED_FUTURE, future2]) == pending
    finally:
        event.set()
    future2.result()  # wait for job to finish


def test_first_exception_one_already_failed(client, executor, api, fixed, create_event):
    needs_background(client)
    event = create_event()
    future1 = executor.submit(event.wait)

    try:
        finished, pending = api.wait([fixed.EXCEPTION_FUTURE, future1], return_when=futures.FIRST_EXCEPTION)

        assert set([fixed.EXCEPTION_FUTURE]) == finished
        assert set([future1]) == pending
    finally:
        event.set()
    future1.result()  # wait for job to finish


def test_all_completed(executor, api, fixed):
    future1 = executor.submit(divmod, 2, 0)
    future2 = executor.submit(mul, 2, 21)

    finished, pending = api.wait(
        [fixed.SUCCESSFUL_FUTURE, fixed.CANCELLED_AND_NOTIFIED_FUTURE, fixed.EXCEPTION_FUTURE, future1, future2],
        return_when=futures.ALL_COMPLETED)

    assert set([fixed.SUCCESSFUL_FUTURE, fixed.CANCELLED_AND_NOTIFIED_FUTURE, fixed.EXCEPTION_FUTURE,
                future1, future2]) == finished
    assert set() == pending


def test_timeout(client, executor, api, fixed, create_event):
    needs_background(client)
    short_timeout = 0.050

    event = create_event()
    future = executor.submit(event.wait)

    try:
        finished, pending = api.wait(
            [fixed.CANCELLED_AND_NOTIFIED_FUTURE, fixed.EXCEPTION_FUTURE, fixed.SUCCESSFUL_FUTURE, future],
            timeout=short_timeout, return_when=futures.ALL_COMPLETED)

        assert set([fixed.CANCELLED_AND_NOTIFIED_FUTURE, fixed.EXCEPTION_FUTURE, fixed.SUCCESSFUL_FUTURE]) == finished
        assert set([future]) == pending
    finally:
        event.set()
    future.result()  # wait for job to finish


def test_pending_calls_race(client, executor, api, create_event):
    # Issue #14406: multi-threaded race condition when waiting on all
    # futures.
    needs_background(client)
    event = create_event()

    def future_func():
        event.wait()
    oldswitchinterval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        fs = {executor.submit(future_func) for i in range(100)}
        event.set()
        api.wait(fs, return_when=futures.ALL_COMPLETED)
    finally:
        sys.setswitchinterval(oldswitchinterval)
    assert all(f.done() for f in fs)


# ---- AsCompletedTests -----------------------------------------------------------------------

def test_no_timeout(executor, api, fixed):
    future1 = executor.submit(mul, 2, 21)
    future2 = executor.submit(mul, 7, 6)

    completed = set(api.as_completed(
        [fixed.CANCELLED_AND_NOTIFIED_FUTURE, fixed.EXCEPTION_FUTURE, fixed.SUCCESSFUL_FUTURE, future1, future2]))
    assert set([fixed.CANCELLED_AND_NOTIFIED_FUTURE, fixed.EXCEPTION_FUTURE, fixed.SUCCESSFUL_FUTURE,
                future1, future2]) == completed


def test_future_times_out(client, executor, api, fixed):
    """Test ``futures.as_completed`` timing out before
    completing it's final future."""
    needs_background(client)
    already_completed = {fixed.CANCELLED_AND_NOTIFIED_FUTURE, fixed.EXCEPTION_FUTURE, fixed.SUCCESSFUL_FUTURE}

    short_timeout = 0.100
    for timeout in (0, short_timeout):
        completed_futures = set()
        future = executor.submit(time.sleep, short_timeout * 5)

        try:
            for f in api.as_completed(already_completed | {future}, timeout):
                completed_futures.add(f)
        except futures.TimeoutError:
            pass

        # Check that ``future`` wasn't completed.
        assert completed_futures == already_completed, timeout


def test_duplicate_futures(executor, api):
    # Issue 20367. Duplicate futures should not raise exceptions or give
    # duplicate responses.
    # Issue #31641: accept arbitrary iterables.
    future1 = executor.submit(time.sleep, 0.3)
    completed = [f for f in api.as_completed(itertools.repeat(future1, 3))]
    assert len(completed) == 1


def test_free_reference_yielded_future(client, api):
    # Issue #14406: Generator should not keep references
    # to finished futures.
    futures_list = [create_future(client) for _ in range(8)]
    futures_list.append(create_future(client, state=CANCELLED_AND_NOTIFIED))
    futures_list.append(create_future(client, state=FINISHED, result=42))

    with pytest.raises(futures.TimeoutError):
        for future in api.as_completed(futures_list, timeout=0):
            futures_list.remove(future)
            wr = weakref.ref(future)
            del future
            gc_collect()  # For PyPy or other GCs.
            assert wr() is None

    futures_list[0].set_result("test")
    for future in api.as_completed(futures_list):
        futures_list.remove(future)
        wr = weakref.ref(future)
        del future
        gc_collect()  # For PyPy or other GCs.
        assert wr() is None
        if futures_list:
            futures_list[0].set_result("test")


def test_correct_timeout_exception_msg(api, fixed):
    futures_list = [fixed.CANCELLED_AND_NOTIFIED_FUTURE, fixed.PENDING_FUTURE, fixed.RUNNING_FUTURE,
                    fixed.SUCCESSFUL_FUTURE]

    with pytest.raises(futures.TimeoutError) as cm:
        list(api.as_completed(futures_list, timeout=0))

    assert str(cm.value) == '2 (of 4) futures unfinished'
