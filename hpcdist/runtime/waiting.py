"""Waiting for futures: :func:`as_completed`, :func:`wait`, and the waiters under them.

Waiting goes through concurrent.futures' waiter protocol (a waiter object in each future's
``_waiters``, told under the future's condition), so it works on any mix of futures. For the
futures of one hpcdist client the waiting thread runs the scheduler's loop meanwhile
(:func:`block`, through the client's :class:`~hpcdist.runtime.futuretable.FutureTable`),
so a result reaches it without a hand-off between threads.
"""

from __future__ import annotations

import _thread
import concurrent.futures as cf
import math
import numbers
import threading
import time
from concurrent.futures import _base as cf_base
from typing import Any, Iterable, Iterator

from hpcdist.runtime.futuretable import FutureTable

FIRST_COMPLETED = cf.FIRST_COMPLETED
FIRST_EXCEPTION = cf.FIRST_EXCEPTION
ALL_COMPLETED = cf.ALL_COMPLETED

#: concurrent.futures' done states (the standard library's wait() and as_completed() read them)
DONE = (cf_base.FINISHED, cf_base.CANCELLED, cf_base.CANCELLED_AND_NOTIFIED)
#: what wait() and as_completed() count as done: a cancelled future only once it was notified,
#: as in concurrent.futures (the scheduler's answer to a cancel notifies it)
NOTIFIEDDONE = (cf_base.FINISHED, cf_base.CANCELLED_AND_NOTIFIED)
_RETURN_WHEN = (FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED)


def check_timeout(timeout: Any, name: str = "timeout") -> float | None:
    """Check a timeout argument in the caller's thread; None or seconds as a float.

    Negative values mean "do not wait", as in :mod:`concurrent.futures`; infinity means no limit.

    Raises:
        TypeError: not a real number (``"10 ms"``, a bool, a list ...).
        ValueError: NaN.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(timeout).__name__} {timeout!r}")
    value = float(timeout)
    if math.isnan(value):
        raise ValueError(f"{name} must be a number of seconds or None, not NaN")
    return None if value == math.inf else max(value, 0.0)


def check_futures(fs: Any, where: str) -> list[cf.Future]:
    """The futures of an iterable, without duplicates, in order; TypeError for anything else."""
    if isinstance(fs, (cf.Future, str, bytes)) or not hasattr(fs, "__iter__"):
        raise TypeError(f"{where}() takes an iterable of futures, not {type(fs).__name__}")
    out = list(dict.fromkeys(fs))
    for f in out:
        if not isinstance(f, cf.Future):
            raise TypeError(f"{where}() takes an iterable of futures; it got a {type(f).__name__}: {f!r:.80}")
    return out


class Wakeup:
    """A concurrent.futures waiter: releases ``lock`` once ``count`` futures are done.

    Its methods run under the futures' (shared) condition, see :class:`~hpcdist.runtime.futures.Future`.
    """

    __slots__ = ("count", "lock", "on_cancel")

    def __init__(self, count: int, on_cancel: bool = True) -> None:
        self.count = count
        # True: a cancel() in another thread counts at once (result(), gather); False: only
        # once the cancel was notified, as concurrent.futures.wait counts it
        self.on_cancel = on_cancel
        self.lock = _thread.allocate_lock()
        self.lock.acquire()

    def add_result(self, future: cf.Future) -> None:
        self.count -= 1
        if self.count == 0:
            self.lock.release()

    add_exception = add_cancelled = add_result


def remove_waiter(fut: cf.Future, waiter: Any) -> None:
    with fut._condition:
        try:
            fut._waiters.remove(waiter)
        except ValueError:  # a cancel() took it out already
            pass


def block(table: FutureTable | None, wakeup: Any, timeout: float | None) -> None:
    """Wait until ``wakeup`` fires, running the scheduler's loop meanwhile if no other thread does."""
    lock = wakeup.lock
    if table is not None and table.drive(lambda: not lock.locked(), timeout) and (
            timeout is not None or not lock.locked()):
        return  # done, or the time is up
    lock.acquire(True, -1 if timeout is None else max(timeout, 0.0))


def wait_all(futures: list[cf.Future]) -> None:
    """Wait until every future is done (one wake-up, whatever their number, for one client's)."""
    if not futures:
        return
    table = _table_of(futures[0])
    cond = table.condition if table is not None else None
    for fut in futures:
        if fut._condition is not cond:  # another client's future: the general way
            cf.wait(futures)
            return
    wait_for(table, futures, True, None)


def wait_for(table: FutureTable, futures: list[cf.Future], every: bool, timeout: float | None,
              done: tuple = DONE) -> None:
    """Wait until every one (``every``) or any one of ``futures`` is in a ``done`` state, or ``timeout``."""
    with table.rlock:
        pending = [f for f in futures if f._state not in done]
        if not pending or (not every and len(pending) < len(futures)):
            return
        wakeup = Wakeup(len(pending) if every else 1, on_cancel=done is DONE)
        for fut in pending:
            fut._waiters.append(wakeup)
    try:
        block(table, wakeup, timeout)
    finally:
        with table.rlock:
            for fut in pending:
                try:
                    fut._waiters.remove(wakeup)
                except ValueError:  # a cancel() took it out already
                    pass


class _Arrivals:
    """The waiter of one :func:`as_completed` loop: the futures finished since it last looked.

    ``lock`` is held while nothing arrived (so :func:`block` can wait on it).
    """

    __slots__ = ("finished", "lock", "mutex")

    def __init__(self) -> None:
        self.finished: list[cf.Future] = []
        self.mutex = threading.Lock()
        self.lock = _thread.allocate_lock()
        self.lock.acquire()

    def add_result(self, future: cf.Future) -> None:
        with self.mutex:
            self.finished.append(future)
            if self.lock.locked():
                self.lock.release()

    add_exception = add_cancelled = add_result

    def take(self) -> list[cf.Future]:
        with self.mutex:
            got, self.finished = self.finished, []
            self.lock.acquire(False)  # re-arm
        return got


def as_completed(fs: Iterable[cf.Future], timeout: float | None = None, *,
                 with_results: bool = False) -> Iterator[Any]:
    """Yield futures as they finish, like :func:`concurrent.futures.as_completed`.

    Each future is dropped by the loop as soon as it was yielded, so a result that the
    caller drops is released on its worker while the loop goes on. The arguments are
    checked at the call, not at the first ``next()``.

    Args:
        fs: any iterable of futures (duplicates are yielded once); futures of several
            clients and plain ``concurrent.futures`` futures mix.
        timeout: seconds for the whole loop; then ``TimeoutError`` (``"2 (of 4) futures
            unfinished"``).
        with_results: yield ``(future, future.result())`` pairs instead.

    Raises:
        TypeError: ``fs`` is not an iterable of futures, or a bad ``timeout``.
    """
    timeout = check_timeout(timeout)
    if not isinstance(with_results, bool):
        raise TypeError(f"with_results must be True or False, not {with_results!r}")
    return _as_completed(check_futures(fs, "as_completed"), timeout, with_results)


def _as_completed(fs: list[cf.Future], timeout: float | None, with_results: bool) -> Iterator[Any]:
    end = None if timeout is None else time.monotonic() + timeout
    total = len(fs)
    arrivals = _Arrivals()
    done: list[cf.Future] = []
    pending: dict[int, cf.Future] = {}
    f = None
    for f in fs:
        with f._condition:
            if f._state in NOTIFIEDDONE:
                done.append(f)
            else:
                f._waiters.append(arrivals)
                pending[id(f)] = f
    done.reverse()
    tables = {_table_of(f) for f in pending.values()}
    table = tables.pop() if len(tables) == 1 else None
    del fs, f, tables
    try:
        while True:
            while done:
                if with_results:
                    item: Any = (done[-1], done[-1].result())
                    done.pop()
                    yield item
                    del item
                else:
                    yield done.pop()  # no reference left in this frame
            if not pending:
                return
            got = arrivals.take()
            if not got:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"{len(pending)} (of {total}) futures unfinished")
                block(table, arrivals, left)
                got = arrivals.take()
            got.reverse()
            for f in got:
                if pending.pop(id(f), None) is not None:
                    remove_waiter(f, arrivals)
                    done.append(f)
            f = got = None  # no reference to a yielded future stays in this frame
    finally:
        for f in pending.values():
            remove_waiter(f, arrivals)


def wait(fs: Iterable[cf.Future], timeout: float | None = None,
         return_when: str = ALL_COMPLETED) -> cf._base.DoneAndNotDoneFutures:
    """Wait for futures, like :func:`concurrent.futures.wait`.

    For futures of one client (``ALL_COMPLETED`` or ``FIRST_COMPLETED``) the waiting thread
    runs the scheduler's loop meanwhile, as ``result()`` does.

    Raises:
        TypeError: ``fs`` is not an iterable of futures, or a bad ``timeout``.
        ValueError: ``return_when`` is not one of the three constants.
    """
    timeout = check_timeout(timeout)
    if return_when not in _RETURN_WHEN:
        raise ValueError(f"return_when must be FIRST_COMPLETED, FIRST_EXCEPTION or ALL_COMPLETED, "
                         f"not {return_when!r}")
    fs = check_futures(fs, "wait")
    table = _table_of(fs[0]) if fs else None
    if table is not None and return_when in (ALL_COMPLETED, FIRST_COMPLETED) and \
            all(getattr(f, "client", None) is fs[0].client for f in fs):
        wait_for(table, fs, return_when == ALL_COMPLETED, timeout, NOTIFIEDDONE)
        timeout = 0  # waited already: only sort them now
    return cf.wait(fs, timeout=timeout, return_when=return_when)



def _table_of(fut: Any) -> FutureTable | None:
    """The future table of a client's future; None for any other future."""
    table = getattr(getattr(fut, "client", None), "future_table", None)
    return table if isinstance(table, FutureTable) else None


__all__ = ["as_completed", "wait", "wait_all", "check_timeout", "check_futures", "block", "wait_for", "Wakeup",
           "remove_waiter", "FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED", "DONE", "NOTIFIEDDONE"]
