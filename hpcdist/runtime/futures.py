"""Futures: :class:`Future`, :func:`as_completed`, :func:`wait` and the machinery under them.

A :class:`Future` is a :class:`concurrent.futures.Future` whose result is held by a worker
(see :mod:`hpcdist.runtime.client` for the :class:`~hpcdist.runtime.client.Client` that makes
them). This module holds what deals with futures themselves: making them (:func:`new_futures`),
marking them done or cancelled (:func:`finish`, :func:`set_cancelled`), waiting for many at
once (:func:`wait_all`), their values (:func:`failed_keys`, :func:`fetch_values`), walking
nested containers of futures (:func:`collect`, :func:`rebuild`), and the standard-library
style :func:`as_completed` and :func:`wait`.

A client's future reaches the world only through its client's
:class:`~hpcdist.runtime.futuretable.FutureTable`, which counts it and whose condition it shares.
"""

from __future__ import annotations

import _thread
import concurrent.futures as cf
import math
import numbers
import pickle
import threading
import time
from concurrent.futures import _base as cf_base
from typing import Any, Callable, Iterable, Iterator

from hpcdist.runtime import serialize
from hpcdist.runtime.futuretable import FutureTable

FIRST_COMPLETED = cf.FIRST_COMPLETED
FIRST_EXCEPTION = cf.FIRST_EXCEPTION
ALL_COMPLETED = cf.ALL_COMPLETED

# concurrent.futures' own state names: the standard library's wait() and as_completed() read them
_PENDING, _RUNNING, _FINISHED = cf_base.PENDING, cf_base.RUNNING, cf_base.FINISHED
_CANCELLED, _NOTIFIED = cf_base.CANCELLED, cf_base.CANCELLED_AND_NOTIFIED
_DONE = (cf_base.FINISHED, cf_base.CANCELLED, cf_base.CANCELLED_AND_NOTIFIED)
# what wait() and as_completed() count as done: a cancelled future only once it was notified,
# as in concurrent.futures (the scheduler's answer to a cancel notifies it)
_NOTIFIED_DONE = (cf_base.FINISHED, cf_base.CANCELLED_AND_NOTIFIED)
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


class _Wakeup:
    """A concurrent.futures waiter: releases ``lock`` once ``count`` futures are done.

    Its methods run under the futures' (shared) condition, see :class:`Future`.
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


class Future(cf.Future):
    """A task's result, held by a worker; a :class:`concurrent.futures.Future` in every respect.

    The futures of one client share one condition (a :class:`threading.Condition` over an
    RLock, so :func:`concurrent.futures.wait`, which acquires every future's condition in
    turn, works): a condition per future was a good part of a tiny task's cost on rank 0.
    Nothing waits on that condition; waiting goes through concurrent.futures' waiter
    protocol, so a finished future wakes only the threads that wait for it.

    ``Future()`` without a client is a plain future, as ``concurrent.futures.Future()`` is
    (for executors and tests). On a client's future, :meth:`set_result` and
    :meth:`set_exception` (meant, as in the standard library, for executors and tests)
    finish this future object with that value: ``result()`` returns it without asking
    a worker; the task itself runs on, and other futures of its key get its own result.

    Done callbacks run in the thread that completes the future, as in concurrent.futures:
    hpcdist's callback thread when a task ends (so a callback may call ``result()``), the
    calling thread for ``set_result``/``cancel`` or a future that is already done. A
    callback that raises is logged (logger ``concurrent.futures``) and the others still run.

    Attributes:
        key: the task's key; equal keys name the same result (None for a plain future).
        client: the client that made it (None for a plain future).
    """

    def __init__(self, key: str | None = None, client: Any = None) -> None:
        if client is None:
            cf.Future.__init__(self)
            self.key = key
            self.client = None
            self._table = None
            self._local = True
            return
        table = client.future_table
        _init_future(self, key, client, table)
        table.register((self,))

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the task and bring its value to rank 0.

        Raises:
            The task's own exception (with the remote traceback as ``__cause__``),
            ``concurrent.futures.CancelledError`` if it was cancelled, or
            ``TimeoutError`` after ``timeout`` seconds; ``TypeError``/``ValueError`` for a
            bad ``timeout``, at once.
        """
        timeout = check_timeout(timeout)
        if self.client is None:
            return cf.Future.result(self, timeout)
        if self._state is not _FINISHED:
            self._wait(timeout)
        if self._state is not _FINISHED or self._exception is not None or self._local:
            return cf.Future.result(self, 0)  # the task's error, CancelledError, TimeoutError or a set value
        small = self._small
        if small is not None:  # the value came with the completion: no round trip
            return serialize.load_result(self.key, small)
        return self._table.gather((self.key,))[self.key]

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the task; its exception, or None if it succeeded (as in concurrent.futures)."""
        timeout = check_timeout(timeout)
        if self.client is not None and self._state is not _FINISHED:
            self._wait(timeout)
            timeout = 0
        return cf.Future.exception(self, timeout)

    def _wait(self, timeout: float | None) -> None:
        with self._condition:
            if self._state in _DONE:
                return
            wakeup = _Wakeup(1)
            self._waiters.append(wakeup)
        try:
            _block(self._table, wakeup, timeout)
        finally:
            _remove_waiter(self, wakeup)

    def cancel(self) -> bool:
        """Cancel the task unless this future is done (or marked running); True if cancelled.

        As in concurrent.futures the future is cancelled at once (its callbacks run, waiting
        ``result()`` calls raise ``CancelledError``) and the scheduler is told to cancel the
        key, which cancels the other futures of the same key and its dependents too. The
        scheduler's answer notifies :func:`wait` and :func:`as_completed`.
        """
        with self._condition:
            state = self._state
            if state is _RUNNING or state is _FINISHED:
                return False
            if state is _CANCELLED or state is _NOTIFIED:
                return True
            self._state = _CANCELLED
            woken = [w for w in self._waiters if getattr(w, "on_cancel", False)]
            for w in woken:
                self._waiters.remove(w)
                w.add_cancelled(self)
            self._condition.notify_all()
        self._invoke_callbacks()
        table = self._table
        if table is not None and not self._local and not table.closed:
            table.cancel((self.key,))
        return True

    def set_result(self, result: Any) -> None:
        """Finish this future with ``result`` (for executors and tests, as in concurrent.futures).

        Raises:
            concurrent.futures.InvalidStateError: the future is already done.
        """
        self._set_local(result, None)

    def set_exception(self, exception: BaseException | None) -> None:
        """Finish this future with ``exception`` (for executors and tests, as in concurrent.futures).

        Raises:
            concurrent.futures.InvalidStateError: the future is already done.
        """
        self._set_local(None, exception)

    def _set_local(self, result: Any, exception: BaseException | None) -> None:
        with self._condition:
            if self._state in _DONE:
                raise cf.InvalidStateError(f"{self._state}: {self!r}")
            self._local = True
            self._result = result
            _mark_finished(self, exception)
            self._condition.notify_all()
        self._invoke_callbacks()

    def add_done_callback(self, fn: Callable[[cf.Future], Any]) -> None:
        """Call ``fn(future)`` once the future is done (at once if it is); see the class docstring.

        Raises:
            TypeError: ``fn`` is not callable.
        """
        if not callable(fn):
            raise TypeError(f"add_done_callback() takes a callable, not {type(fn).__name__} {fn!r:.80}")
        cf.Future.add_done_callback(self, fn)

    def __repr__(self) -> str:
        with self._condition:
            state = self._state
            text = f"<{type(self).__name__} at {id(self):#x} state={cf_base._STATE_TO_DESCRIPTION_MAP[state]}"
            if state is _FINISHED:
                if self._exception is not None:
                    text += f" raised {type(self._exception).__name__}"
                else:
                    text += f" returned {self._result_type()}"
        if self.key is not None:
            text += f" key={self.key!r}"
        return text + ">"

    def _result_type(self) -> str:
        if self._local or self.client is None:
            return type(self._result).__name__
        small = self._small
        if small is None:
            data = getattr(self._table.world, "data", None)  # the local backend holds values here
            if isinstance(data, dict) and self.key in data:
                return type(data[self.key]).__name__
            return "(a value held on a worker)"
        try:
            return type(pickle.loads(small)).__name__
        except Exception:  # noqa: BLE001 - a repr never raises
            return "(a value held on a worker)"

    def __reduce__(self) -> Any:
        raise TypeError("an hpcdist Future can only be passed as an argument of Client.submit/map")

    def __del__(self) -> None:
        table = getattr(self, "_table", None)
        if table is not None:
            table.unregister(self.key)


def _init_future(fut: Future, key: str, client: Any, table: FutureTable) -> None:
    # What concurrent.futures.Future.__init__ sets, with the client's shared condition.
    fut._condition = table.condition
    fut._state = _PENDING
    fut._result = None
    fut._exception = None
    fut._waiters = []
    fut._done_callbacks = []
    fut._local = False  # True once set_result/set_exception gave it a value of its own
    fut._small = None  # the pickle of a small result, sent along with its completion
    fut._table = table
    fut.key = key
    fut.client = client


def new_futures(client: Any, table: FutureTable, keys: Iterable[str]) -> list[Future]:
    """Pending futures of ``client`` for ``keys``, counted in ``table``."""
    new = Future.__new__
    futures = []
    for key in keys:
        fut = new(Future)
        _init_future(fut, key, client, table)
        futures.append(fut)
    table.register(futures)
    return futures


def _remove_waiter(fut: cf.Future, waiter: Any) -> None:
    with fut._condition:
        try:
            fut._waiters.remove(waiter)
        except ValueError:  # a cancel() took it out already
            pass


def _notify_cancelled(fut: Future, called: list[Future]) -> None:
    """The scheduler cancelled ``fut``'s key: a cancelled future, notified (condition held)."""
    state = fut._state
    if state is _FINISHED or state is _NOTIFIED:
        return
    if state is not _CANCELLED:  # callbacks of a cancel() ran already
        called.append(fut)
    fut._state = _NOTIFIED
    for waiter in fut._waiters:
        waiter.add_cancelled(fut)


def set_cancelled(table: FutureTable, futures: list[Future]) -> None:
    """Mark futures of ``table`` cancelled and notified, as the scheduler cancelled their key."""
    called: list[Future] = []
    with table.rlock:
        for fut in futures:
            _notify_cancelled(fut, called)
        table.condition.notify_all()
    if called:
        table.call_later([fut._invoke_callbacks for fut in called])


def _mark_finished(fut: Future, exception: BaseException | None) -> None:
    """``fut`` finished (with ``exception`` or a result), and every waiter told (condition held)."""
    fut._exception = exception
    fut._state = _FINISHED
    for waiter in fut._waiters:
        if exception is None:
            waiter.add_result(fut)
        else:
            waiter.add_exception(fut)


def finish(table: FutureTable, futures: list[Future], error: BaseException | None,
           small: bytes | None = None) -> None:
    """Mark futures of ``table`` done, as concurrent.futures' set_result/set_exception would.

    ``small`` is the pickle of the result, when it came along with the completion.
    """
    called: list[Future] = []
    with table.rlock:
        for fut in futures:
            state = fut._state
            if state in _DONE:
                if state is _CANCELLED:  # cancelled here while it finished: notify the cancel
                    _notify_cancelled(fut, called)
                continue
            fut._small = small
            _mark_finished(fut, error)
            if fut._done_callbacks:
                called.append(fut)
        cond = table.condition
        if cond._waiters:  # only a direct concurrent.futures.Future.result() call waits here
            cond.notify_all()
    if called:  # on the callback thread: the callbacks may block or call result()
        table.call_later([fut._invoke_callbacks for fut in called])


def _block(table: FutureTable | None, wakeup: Any, timeout: float | None) -> None:
    """Wait until ``wakeup`` fires, running the scheduler's loop meanwhile if no other thread does."""
    lock = wakeup.lock
    if table is not None and table.drive(lambda: not lock.locked(), timeout) and (
            timeout is not None or not lock.locked()):
        return  # done, or the time is up
    lock.acquire(True, -1 if timeout is None else max(timeout, 0.0))


def wait_all(futures: list[Future]) -> None:
    """Wait until every future is done (one wake-up, whatever their number, for one client's)."""
    if not futures:
        return
    table = getattr(futures[0], "_table", None)
    cond = table.condition if table is not None else None
    for fut in futures:
        if fut._condition is not cond:  # another client's future: the general way
            cf.wait(futures)
            return
    _wait_for(table, futures, True, None)


def failed_keys(futures: list[Future], errors: str) -> set[str]:
    """The keys of the failed or cancelled ones of these done futures.

    Raises:
        The first one's exception (``CancelledError`` if cancelled) if ``errors == "raise"``.
    """
    bad = set()
    for fut in futures:
        if fut._state is not _FINISHED or fut._exception is not None:  # cancelled or failed
            if errors == "raise":
                if fut.cancelled():
                    raise cf.CancelledError(f"task {fut.key!r} was cancelled")
                raise fut.exception()
            bad.add(fut.key)
    return bad


def fetch_values(table: FutureTable, futures: list[Future], bad: set[str]) -> dict[str, Any]:
    """The values of finished futures whose key is not in ``bad``, by key, on rank 0.

    Small ones came with their completion; the others come from their workers in one request.
    A future given a value of its own (``set_result``) is left out: :func:`rebuild` reads it.
    """
    values: dict[str, Any] = {}
    remote: dict[str, None] = {}
    for fut in futures:
        key = fut.key
        if fut._local or key in bad or key in values:
            continue
        small = fut._small
        if small is not None:
            values[key] = serialize.load_result(key, small)  # in-band only: see worker.INLINE_MAX
        else:
            remote[key] = None
    if remote:
        values.update(table.gather(list(remote)))
    return values


def _wait_for(table: FutureTable, futures: list[Future], every: bool, timeout: float | None,
              done: tuple = _DONE) -> None:
    """Wait until every one (``every``) or any one of ``futures`` is in a ``done`` state, or ``timeout``."""
    with table.rlock:
        pending = [f for f in futures if f._state not in done]
        if not pending or (not every and len(pending) < len(futures)):
            return
        wakeup = _Wakeup(len(pending) if every else 1, on_cancel=done is _DONE)
        for fut in pending:
            fut._waiters.append(wakeup)
    try:
        _block(table, wakeup, timeout)
    finally:
        with table.rlock:
            for fut in pending:
                try:
                    fut._waiters.remove(wakeup)
                except ValueError:  # a cancel() took it out already
                    pass


def is_container(obj: Any) -> bool:
    """Any iterable that is not a future, a string, bytes or a mapping."""
    return not isinstance(obj, (cf.Future, str, bytes, bytearray, memoryview, dict)) and hasattr(obj, "__iter__")


def collect(obj: Any, out: list[Future]) -> None:
    """Append the futures inside ``obj`` (lists, tuples, sets, dict values, nested) to ``out``."""
    if isinstance(obj, Future):
        out.append(obj)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for x in obj:
            if isinstance(x, Future):  # the common case, without a call per item
                out.append(x)
            else:
                collect(x, out)
    elif isinstance(obj, dict):
        for x in obj.values():
            collect(x, out)


def _value(fut: Future, values: dict[str, Any]) -> Any:
    return fut._result if fut._local else values[fut.key]


def rebuild(obj: Any, values: dict[str, Any], bad: set[str]) -> Any:
    """``obj`` with its futures replaced by their values; futures of ``bad`` keys left out."""
    if isinstance(obj, Future):
        return _value(obj, values)
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = []
        for x in obj:
            if isinstance(x, Future):  # the common case, without a call per item
                if x.key not in bad:
                    items.append(x._result if x._local else values[x.key])
            else:
                items.append(rebuild(x, values, bad))
        if isinstance(obj, list):
            return items
        return type(obj)(items) if isinstance(obj, (set, frozenset)) else tuple(items)
    if isinstance(obj, dict):
        return {k: rebuild(v, values, bad) for k, v in obj.items() if not (isinstance(v, Future) and v.key in bad)}
    return obj


class _Arrivals:
    """The waiter of one :func:`as_completed` loop: the futures finished since it last looked.

    ``lock`` is held while nothing arrived (so :func:`_block` can wait on it).
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
            if f._state in _NOTIFIED_DONE:
                done.append(f)
            else:
                f._waiters.append(arrivals)
                pending[id(f)] = f
    done.reverse()
    tables = {getattr(f, "_table", None) for f in pending.values()}
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
                _block(table, arrivals, left)
                got = arrivals.take()
            got.reverse()
            for f in got:
                if pending.pop(id(f), None) is not None:
                    _remove_waiter(f, arrivals)
                    done.append(f)
            f = got = None  # no reference to a yielded future stays in this frame
    finally:
        for f in pending.values():
            _remove_waiter(f, arrivals)


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
    table = fs[0]._table if fs and isinstance(fs[0], Future) else None
    if table is not None and return_when in (ALL_COMPLETED, FIRST_COMPLETED) and \
            all(isinstance(f, Future) and f._table is table for f in fs):
        _wait_for(table, fs, return_when == ALL_COMPLETED, timeout, _NOTIFIED_DONE)
        timeout = 0  # waited already: only sort them now
    return cf.wait(fs, timeout=timeout, return_when=return_when)


__all__ = ["Future", "as_completed", "wait", "check_timeout", "check_futures", "new_futures", "finish",
           "set_cancelled", "wait_all", "failed_keys", "fetch_values", "is_container", "collect", "rebuild",
           "FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED"]
