"""Futures: :class:`Future`, :func:`as_completed`, :func:`wait` and the machinery under them.

A :class:`Future` is a :class:`concurrent.futures.Future` whose result is held by a worker
(see :mod:`hpcdist.runtime.client` for the :class:`~hpcdist.runtime.client.Client` that makes
them). This module holds what deals with futures themselves: their shared-condition setup,
marking them done or cancelled (:func:`_finish`, :func:`_set_cancelled`), waiting for many at
once (:func:`_wait_all`), walking nested containers of futures (:func:`_collect`,
:func:`_rebuild`), and the standard-library style :func:`as_completed` and :func:`wait`.

A future reaches its client only through its ``client`` attribute, so this module never
imports the client at run time.
"""

from __future__ import annotations

import _thread
import concurrent.futures as cf
import functools
import queue
from concurrent.futures import _base as cf_base
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from hpcdist.runtime import serialize

if TYPE_CHECKING:
    from hpcdist.runtime.client import Client

FIRST_COMPLETED = cf.FIRST_COMPLETED
FIRST_EXCEPTION = cf.FIRST_EXCEPTION
ALL_COMPLETED = cf.ALL_COMPLETED

# concurrent.futures' own state names: the standard library's wait() and as_completed() read them
_PENDING, _FINISHED = cf_base.PENDING, cf_base.FINISHED
_DONE = (cf_base.FINISHED, cf_base.CANCELLED, cf_base.CANCELLED_AND_NOTIFIED)


class _Wakeup:
    """A concurrent.futures waiter: releases ``lock`` once ``count`` futures are done.

    Its methods run under the futures' (shared) condition, see :class:`Future`.
    """

    __slots__ = ("count", "lock")

    def __init__(self, count: int) -> None:
        self.count = count
        self.lock = _thread.allocate_lock()
        self.lock.acquire()

    def add_result(self, future: cf.Future) -> None:
        self.count -= 1
        if self.count == 0:
            self.lock.release()

    add_exception = add_cancelled = add_result


class Future(cf.Future):
    """A task's result, held by a worker.

    The futures of one client share one condition (a :class:`threading.Condition` over an
    RLock, so :func:`concurrent.futures.wait`, which acquires every future's condition in
    turn, works): a condition per future was a good part of a tiny task's cost on rank 0.
    Nothing waits on that condition; waiting goes through concurrent.futures' waiter
    protocol, so a finished future wakes only the threads that wait for it.

    Attributes:
        key: the task's key; equal keys name the same result.
    """

    def __init__(self, key: str, client: Client) -> None:
        _init_future(self, key, client)
        client._register((self,))

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the task and bring its value to rank 0.

        Raises:
            The task's own exception (with the remote traceback as ``__cause__``),
            ``concurrent.futures.CancelledError`` if it was cancelled, or
            ``TimeoutError`` after ``timeout`` seconds.
        """
        if self._state is not _FINISHED:
            self._wait(timeout)
        if self._state is not _FINISHED or self._exception is not None:
            cf.Future.result(self, 0)  # raises the task's error, CancelledError or TimeoutError
        small = self.client._small.get(self.key)
        if small is not None:  # the value came with the completion: no round trip
            return serialize.load_result(self.key, small)
        return self.client._fetch([self.key])[self.key]

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the task; its exception, or None if it succeeded (as in concurrent.futures)."""
        if self._state is not _FINISHED:
            self._wait(timeout)
        return cf.Future.exception(self, 0)

    def _wait(self, timeout: float | None) -> None:
        with self._condition:
            if self._state in _DONE:
                return
            wakeup = _Wakeup(1)
            self._waiters.append(wakeup)
        try:
            _block(self.client, wakeup, timeout)
        finally:
            with self._condition:
                self._waiters.remove(wakeup)

    def cancel(self) -> bool:
        """Ask the scheduler to cancel this task; True once it is cancelled."""
        if self.done():
            return self.cancelled()
        self.client.cancel([self])
        cf.wait([self], timeout=5)
        return self.cancelled()

    def add_done_callback(self, fn: Callable[[cf.Future], Any]) -> None:
        """Call ``fn(future)`` when done, on hpcdist's callback thread (so it may call result())."""
        # a partial, not a closure over self: no reference cycle, so the future dies (and its
        # key is released) as soon as the program drops it
        super().add_done_callback(functools.partial(_defer_callback, self.client._callbacks, fn))

    def __repr__(self) -> str:
        status = "cancelled" if self.cancelled() else "error" if self.done() and self.exception() else (
            "finished" if self.done() else "pending")
        return f"<hpcdist.Future {status} key={self.key!r}>"

    def __reduce__(self) -> Any:
        raise TypeError("an hpcdist Future can only be passed as an argument of Client.submit/map")

    def __del__(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client._unregister(self.key)


def _init_future(fut: Future, key: str, client: Client) -> None:
    # What concurrent.futures.Future.__init__ sets, with the client's shared condition.
    fut._condition = client._cond
    fut._state = _PENDING
    fut._result = None
    fut._exception = None
    fut._waiters = []
    fut._done_callbacks = []
    fut.key = key
    fut.client = client


def _defer_callback(callbacks: queue.SimpleQueue, fn: Callable, fut: cf.Future) -> None:
    callbacks.put((fn, fut))


def _set_cancelled(fut: Future) -> None:
    if cf.Future.cancel(fut):
        fut.set_running_or_notify_cancel()


def _finish(client: Client, futures: list[Future], error: BaseException | None) -> None:
    """Mark futures done, as concurrent.futures' set_result/set_exception would."""
    called = []
    with client._rlock:
        for fut in futures:
            if fut._state in _DONE:
                continue
            fut._exception = error
            fut._state = _FINISHED
            for waiter in fut._waiters:
                if error is None:
                    waiter.add_result(fut)
                else:
                    waiter.add_exception(fut)
            if fut._done_callbacks:
                called.append(fut)
        if client._cond._waiters:  # only a direct concurrent.futures.Future.result() call waits here
            client._cond.notify_all()
    for fut in called:
        fut._invoke_callbacks()


def _block(client: Client, wakeup: _Wakeup, timeout: float | None) -> None:
    """Wait until ``wakeup`` fires, running the scheduler's loop meanwhile if no other thread does."""
    lock = wakeup.lock
    if client._world.drive(lambda: not lock.locked(), timeout) and (timeout is not None or not lock.locked()):
        return  # done, or the time is up
    lock.acquire(True, -1 if timeout is None else max(timeout, 0.0))


def _wait_all(client: Client, futures: list[Future]) -> None:
    """Wait until every future is done (one wake-up, whatever their number)."""
    cond = client._cond
    for fut in futures:
        if fut._condition is not cond:  # another client's future: the general way
            cf.wait(futures)
            return
    _wait_for(client, futures, True, None)


def _wait_for(client: Client, futures: list[Future], every: bool, timeout: float | None) -> None:
    """Wait until every one (``every``) or any one of ``futures`` is done, or ``timeout``."""
    with client._rlock:
        pending = [f for f in futures if f._state not in _DONE]
        if not pending or (not every and len(pending) < len(futures)):
            return
        wakeup = _Wakeup(len(pending) if every else 1)
        for fut in pending:
            fut._waiters.append(wakeup)
    try:
        _block(client, wakeup, timeout)
    finally:
        with client._rlock:
            for fut in pending:
                fut._waiters.remove(wakeup)


def _collect(obj: Any, out: list[Future]) -> None:
    if isinstance(obj, Future):
        out.append(obj)
    elif isinstance(obj, (list, tuple, set)):
        for x in obj:
            if isinstance(x, Future):  # the common case, without a call per item
                out.append(x)
            else:
                _collect(x, out)
    elif isinstance(obj, dict):
        for x in obj.values():
            _collect(x, out)


def _rebuild(obj: Any, values: dict[str, Any], bad: set[str]) -> Any:
    if isinstance(obj, Future):
        return values[obj.key]
    if isinstance(obj, (list, tuple)):
        items = []
        for x in obj:
            if isinstance(x, Future):  # the common case, without a call per item
                if x.key not in bad:
                    items.append(values[x.key])
            else:
                items.append(_rebuild(x, values, bad))
        return tuple(items) if isinstance(obj, tuple) else items
    if isinstance(obj, dict):
        return {k: _rebuild(v, values, bad) for k, v in obj.items() if not (isinstance(v, Future) and v.key in bad)}
    return obj


def as_completed(futures: Iterable[Future], with_results: bool = False) -> Iterator[Any]:
    """Yield futures as they finish (with ``with_results``: ``(future, result)`` pairs)."""
    for fut in cf.as_completed(list(futures)):
        if with_results:
            yield fut, fut.result()
        else:
            yield fut


def wait(futures: Iterable[Future], timeout: float | None = None,
         return_when: str = ALL_COMPLETED) -> cf._base.DoneAndNotDoneFutures:
    """Wait for futures, like :func:`concurrent.futures.wait`.

    For futures of one client (``ALL_COMPLETED`` or ``FIRST_COMPLETED``) the waiting thread
    runs the scheduler's loop meanwhile, as ``result()`` does.
    """
    fs = list(futures)
    client = fs[0].client if fs and isinstance(fs[0], Future) else None
    if client is not None and return_when in (ALL_COMPLETED, FIRST_COMPLETED) and \
            all(isinstance(f, Future) and f.client is client for f in fs):
        _wait_for(client, fs, return_when == ALL_COMPLETED, timeout)
        timeout = 0  # waited already: only sort them now
    return cf.wait(fs, timeout=timeout, return_when=return_when)


__all__ = ["Future", "as_completed", "wait", "FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED"]
