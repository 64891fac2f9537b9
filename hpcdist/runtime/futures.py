"""Futures: :class:`Future` and what deals with futures themselves.

A :class:`Future` is a :class:`concurrent.futures.Future` whose result is held by a worker
(see :mod:`hpcdist.runtime.client` for the :class:`~hpcdist.runtime.client.Client` that makes
them). This module makes them (:func:`new_futures`), marks them done or cancelled
(:func:`finish`, :func:`set_cancelled`), reads their values (:func:`failed_keys`,
:func:`fetch_values`) and walks nested containers of futures (:func:`collect`,
:func:`rebuild`). Waiting for them (:func:`~hpcdist.runtime.waiting.wait`,
:func:`~hpcdist.runtime.waiting.as_completed`) is :mod:`hpcdist.runtime.waiting`'s.

A client's future reaches the world only through its client's ``future_table`` (a
:class:`~hpcdist.runtime.futuretable.FutureTable`), which counts it and whose condition it
shares.
"""

from __future__ import annotations

import concurrent.futures as cf
import pickle
from concurrent.futures import _base as cf_base
from typing import Any, Callable, Iterable

from hpcdist.runtime import serialize
from hpcdist.runtime.futuretable import FutureTable
from hpcdist.runtime.waiting import Wakeup, block, check_timeout, remove_waiter

# concurrent.futures' own state names
_PENDING, _RUNNING, _FINISHED = cf_base.PENDING, cf_base.RUNNING, cf_base.FINISHED
_CANCELLED, _NOTIFIED = cf_base.CANCELLED, cf_base.CANCELLED_AND_NOTIFIED
_DONE = (cf_base.FINISHED, cf_base.CANCELLED, cf_base.CANCELLED_AND_NOTIFIED)


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
        return self.client.future_table.gather((self.key,))[self.key]

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
            wakeup = Wakeup(1)
            self._waiters.append(wakeup)
        try:
            block(self.client.future_table, wakeup, timeout)
        finally:
            remove_waiter(self, wakeup)

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
        client = self.client
        if client is not None and not self._local and not client.future_table.closed:
            client.future_table.cancel((self.key,))
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
            data = getattr(self.client.future_table.world, "data", None)  # the local backend holds values here
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
        client = getattr(self, "client", None)
        if client is not None:
            client.future_table.unregister(self.key)


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
    fut.key = key
    fut.client = client


def new_futures(client: Any, keys: Iterable[str]) -> list[Future]:
    """Pending futures of ``client`` for ``keys``, counted in its future table."""
    table = client.future_table
    new = Future.__new__
    futures = []
    for key in keys:
        fut = new(Future)
        _init_future(fut, key, client, table)
        futures.append(fut)
    table.register(futures)
    return futures


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


__all__ = ["Future", "new_futures", "finish", "set_cancelled", "failed_keys", "fetch_values", "is_container",
           "collect", "rebuild"]
