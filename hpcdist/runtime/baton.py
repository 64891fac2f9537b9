"""The leader/follower hand-off of one receive loop between threads.

One loop (receive, handle, send) is run by one thread at a time: the thread that holds the
baton. Foreground threads (a client thread waiting for a result on rank 0, a worker's
executor when it has no task) take it whenever they want it: if the background thread
holds it, they raise :attr:`Baton.wanted` and interrupt the transport, and the background
thread ends its round and lets go. The background thread (the scheduler thread, a worker's
communication thread) takes the baton only once no foreground thread has held it for
``takeover_s``, so a foreground thread that comes back within that time never waits for a
hand-off.

Usage, background thread::

    while baton.await_turn():
        with baton.lead:
            while not baton.stopped and not baton.wanted:
                ...one round...

foreground thread::

    if baton.take():
        try:
            ...rounds...
        finally:
            baton.give()
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class Baton:
    """Who runs a loop: one of the foreground threads, or the background thread.

    Args:
        interrupt: makes the background thread's blocking receive return now (the
            transport's ``interrupt``), so it sees :attr:`wanted`.
        takeover_s: the background thread takes the baton once no foreground thread has
            held it for this long (seconds).
        wake_background: True: while a foreground thread holds the baton, the background
            thread sleeps until :meth:`give` wakes it. False: it looks every ``takeover_s``
            instead, and :meth:`give` wakes nobody (a foreground thread that is usually back
            within microseconds then costs no thread switch).
        held: whether the baton starts as held by the foreground (True: the background
            thread waits for a first :meth:`give`; False: it may take the baton at once).
    """

    def __init__(self, interrupt: Callable[[], None], takeover_s: float, *, wake_background: bool,
                 held: bool) -> None:
        #: held by the thread running the loop
        self.lead = threading.Lock()
        #: a foreground thread waits for the background thread to let go of :attr:`lead`
        self.wanted = False
        #: set once by :meth:`stop`; every thread then leaves the loop
        self.stopped = False
        self._interrupt = interrupt
        self._takeover_s = takeover_s
        self._wake = wake_background
        self._claim = threading.Lock()  # held by the one foreground thread that holds or takes the baton
        self._since: float | None = None if held else 0.0  # when the foreground last gave it; None: holds it
        self._park = threading.Condition(threading.Lock())  # the background thread waits here
        self._parked = False  # ... without a timeout, until give()

    def take(self) -> bool:
        """Take the baton in a foreground thread, from the background thread if it has it.

        Returns:
            False at once if another foreground thread holds it (nothing taken).
        """
        if not self._claim.acquire(False):
            return False
        self._since = None  # first: a background thread that lets go parks, not takes it again
        if not self.lead.acquire(False):
            self.wanted = True
            self._interrupt()
            self.lead.acquire()
            self.wanted = False
        return True

    def give(self) -> None:
        """Let go of the baton taken by :meth:`take`; the background thread may take it after
        ``takeover_s``."""
        self._since = time.monotonic()
        self.lead.release()
        self._claim.release()
        if self._parked:
            with self._park:
                self._park.notify()

    def await_turn(self) -> bool:
        """Wait, in the background thread, until no foreground thread has held the baton for
        ``takeover_s``; then acquire :attr:`lead` and run rounds until :attr:`wanted`.

        Returns:
            False once :meth:`stop` was called (do not run the loop).
        """
        takeover = self._takeover_s
        with self._park:
            while not self.stopped:
                since = self._since
                if since is None:
                    if not self._wake:
                        self._park.wait(takeover)
                        continue
                    self._parked = True  # before looking again: a give() from now on wakes this thread
                    if self._since is None:
                        self._park.wait()
                    self._parked = False
                    continue
                left = since + takeover - time.monotonic()
                if left <= 0:
                    break
                self._park.wait(left)
        return not self.stopped

    def stop(self) -> None:
        """Stop the loop for good: :meth:`await_turn` returns False from now on."""
        with self._park:
            self.stopped = True
            self._park.notify()
