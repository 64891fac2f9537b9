"""A client thread that waits for a result runs the scheduler's loop itself (drive).

The scheduler thread takes the loop back when no client thread runs it; several waiting
threads share it; Ctrl-C while the main thread runs the loop is held back until the round
is over, so it never cuts a state change in half.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import threading
import time

import pytest

from hpcdist import Client


def inc(x):
    return x + 1


def interrupt_me(delay):
    time.sleep(delay)
    os.kill(os.getpid(), signal.SIGINT)  # the thread backend: the driver's own process
    time.sleep(0.2)
    return "late"


def test_the_waiting_thread_runs_the_loop_and_the_scheduler_thread_takes_it_back():
    with Client(backend="thread", workers=2) as c:
        scheduler = c._world.scheduler
        seen = []
        deliver = scheduler._deliver

        def spy():
            seen.append(threading.current_thread().name)
            deliver()

        scheduler._deliver = spy
        assert c.submit(inc, 1).result() == 2  # driven here
        assert threading.current_thread().name in seen
        seen.clear()
        fut = c.submit(inc, 2)
        time.sleep(0.05)  # nobody waits: the scheduler thread runs the loop
        assert fut.done() and "hpcdist-scheduler" in seen
        done, _ = cf.wait([c.submit(inc, 3)], timeout=10)  # the standard library does not drive
        assert len(done) == 1


def test_many_threads_waiting_at_once_all_get_their_results():
    with Client(backend="thread", workers=2) as c:
        def work(i):
            return [c.submit(inc, i * 1000 + j, pure=False).result() for j in range(30)]

        with cf.ThreadPoolExecutor(6) as pool:
            results = list(pool.map(work, range(6)))
        assert results == [[i * 1000 + j + 1 for j in range(30)] for i in range(6)]


def test_ctrl_c_while_the_main_thread_drives_is_raised_after_the_round():
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.fail("the test runner replaced Python's SIGINT handler")
    with Client(backend="thread", workers=2) as c:
        assert signal.getsignal(signal.SIGINT) == c._world.on_sigint
        with pytest.raises(KeyboardInterrupt):
            c.submit(interrupt_me, 0.05).result()
        # the loop was left between rounds: the world still works
        assert c.gather(c.map(inc, range(20))) == list(range(1, 21))
        with pytest.raises(KeyboardInterrupt):  # outside the loop Ctrl-C interrupts as usual
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored at close


def test_hpcdist_wait_drives_and_keeps_the_standard_semantics():
    import hpcdist

    with Client(backend="thread", workers=2) as c:
        futures = c.map(inc, range(10))
        done, not_done = hpcdist.wait(futures)
        assert done == set(futures) and not not_done
        slow = c.submit(time.sleep, 0.5, pure=False)
        quick = c.submit(inc, 100)
        done, not_done = hpcdist.wait([slow, quick], return_when=cf.FIRST_COMPLETED)
        assert quick in done and slow in not_done
        done, not_done = hpcdist.wait([slow], timeout=0.01)
        assert not done and not_done == {slow}
        done, _ = hpcdist.wait([slow], timeout=10)
        assert done == {slow}
