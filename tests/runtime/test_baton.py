"""The leader/follower hand-off, with real threads and no transport."""

import threading
import time

import pytest

from hpcdist.runtime.baton import Baton

TAKEOVER = 0.02


class Loop:
    """A background thread running rounds whenever it has the baton; counts concurrent runners."""

    def __init__(self, *, wake_background, held):
        self.interrupts = 0
        self.baton = Baton(self.interrupt, TAKEOVER, wake_background=wake_background, held=held)
        self.running = 0
        self.max_running = 0
        self.bg_rounds = 0
        self.guard = threading.Lock()
        self.thread = threading.Thread(target=self.background, daemon=True)

    def interrupt(self):
        self.interrupts += 1

    def round(self, background):
        with self.guard:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        time.sleep(0.0005)
        with self.guard:
            self.running -= 1
            if background:
                self.bg_rounds += 1

    def background(self):
        baton = self.baton
        while baton.await_turn():
            with baton.lead:
                while not baton.stopped and not baton.wanted:
                    self.round(True)

    def stop(self):
        self.baton.stop()
        self.thread.join(2)
        assert not self.thread.is_alive(), "the background thread was never woken by stop()"


def wait_for(cond, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition never came true"
        time.sleep(0.001)


@pytest.mark.parametrize("wake", [True, False])
def test_background_takes_over_after_the_takeover_time(wake):
    loop = Loop(wake_background=wake, held=False)
    loop.thread.start()
    wait_for(lambda: loop.bg_rounds > 0)
    assert loop.baton.take()
    t0 = time.monotonic()
    n = loop.bg_rounds
    time.sleep(3 * TAKEOVER)
    assert loop.bg_rounds == n, "the background ran rounds while a foreground thread held the baton"
    loop.baton.give()
    wait_for(lambda: loop.bg_rounds > n)
    assert time.monotonic() - t0 >= TAKEOVER
    loop.stop()
    assert loop.max_running == 1


def test_taking_interrupts_the_background_and_waits_for_it():
    loop = Loop(wake_background=True, held=False)
    loop.thread.start()
    wait_for(lambda: loop.bg_rounds > 0)
    assert loop.baton.take()
    assert loop.interrupts >= 1
    assert loop.baton.lead.locked() and not loop.baton.wanted
    loop.baton.give()
    loop.stop()


def test_a_held_baton_keeps_the_background_parked_until_given():
    loop = Loop(wake_background=True, held=True)
    loop.thread.start()
    time.sleep(5 * TAKEOVER)
    assert loop.bg_rounds == 0, "the background took a baton held by the foreground"
    assert loop.baton.take()  # the one foreground thread; the lead was free
    loop.baton.give()
    wait_for(lambda: loop.bg_rounds > 0)  # the parked background was woken by give()
    loop.stop()


def test_one_foreground_thread_at_a_time():
    loop = Loop(wake_background=False, held=False)
    assert loop.baton.take()
    other = []
    t = threading.Thread(target=lambda: other.append(loop.baton.take()))
    t.start()
    t.join(2)
    assert other == [False]
    loop.baton.give()
    assert loop.baton.take()
    loop.baton.give()


@pytest.mark.parametrize("wake", [True, False])
def test_never_two_runners_under_contention(wake):
    loop = Loop(wake_background=wake, held=wake)
    loop.thread.start()
    done = threading.Event()

    def foreground():
        while not done.is_set():
            if loop.baton.take():
                try:
                    loop.round(False)
                finally:
                    loop.baton.give()
            time.sleep(TAKEOVER * (0.5 if threading.get_ident() % 2 else 2))

    threads = [threading.Thread(target=foreground) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    done.set()
    for t in threads:
        t.join(2)
    wait_for(lambda: loop.bg_rounds > 0)  # once the foreground is gone, the background runs
    loop.stop()
    assert loop.max_running == 1, "two threads ran the loop at once"


def test_stop_wakes_a_parked_background():
    loop = Loop(wake_background=True, held=True)
    loop.thread.start()
    time.sleep(2 * TAKEOVER)
    loop.stop()
    assert not loop.baton.await_turn()
