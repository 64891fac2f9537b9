"""A :class:`concurrent.futures.Executor` over a client: :class:`ClientExecutor`.

It uses the client's public API only (:meth:`~hpcdist.runtime.client.Client.starmap` and
:meth:`~hpcdist.runtime.client.Client.running_keys`); :meth:`Client.get_executor` makes one.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import threading
import time
import weakref
from typing import Any, Callable, Iterable, Iterator

from hpcdist.runtime.futures import Future
from hpcdist.runtime.waiting import check_timeout, wait_all


class ClientExecutor(cf.Executor):
    """``concurrent.futures`` view of a client: behaves as the standard library's executors.

    Every call is impure (a fresh key), every keyword goes to ``fn``. ``shutdown`` ends this
    executor only (not the client): later ``submit``/``map`` raise RuntimeError. As in the
    standard library, a submitted call runs even if its future is dropped: the executor
    holds each future until it is done, and no longer (it keeps no finished result alive).

    Args:
        client: the :class:`~hpcdist.runtime.client.Client` whose workers run the calls.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._futures: weakref.WeakSet[Future] = weakref.WeakSet()
        self._unfinished: set[Future] = set()  # dropped by their own done callback
        self._shutdown = False
        self._lock = threading.Lock()

    def _hold(self, fs: list[Future]) -> None:
        self._futures.update(fs)
        unfinished = self._unfinished
        for fut in fs:
            unfinished.add(fut)
            fut.add_done_callback(unfinished.discard)

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        """Run ``fn(*args, **kwargs)`` on a worker; every keyword is ``fn``'s."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            fut = self._client.starmap(fn, [args], kwargs, pure=False)[0]
            self._hold([fut])
        return fut

    def map(self, fn: Callable, *iterables: Iterable, timeout: float | None = None,
            chunksize: int = 1) -> Iterator[Any]:
        """Like :meth:`concurrent.futures.Executor.map`: every task is submitted now, the results
        come in order; ``chunksize`` items run as one task.

        Raises:
            ValueError: ``chunksize`` below 1. TypeError: a bad ``timeout`` or ``chunksize``.
            RuntimeError: after :meth:`shutdown`.
        """
        timeout = check_timeout(timeout)
        if isinstance(chunksize, bool) or not isinstance(chunksize, int):
            raise TypeError(f"chunksize must be an int, not {type(chunksize).__name__}")
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if not callable(fn):
            raise TypeError(f"{fn!r:.80} is not callable")
        items = list(zip(*iterables))
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if chunksize == 1:
                fs = self._client.starmap(fn, items, pure=False)
            else:
                chunks = [(items[i:i + chunksize],) for i in range(0, len(items), chunksize)]
                fs = self._client.starmap(functools.partial(_run_chunk, fn), chunks, pure=False)
            self._hold(fs)
        end = None if timeout is None else time.monotonic() + timeout
        return _results(fs, end, chunksize > 1)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new tasks after this; ``cancel_futures`` cancels the tasks that have not started,
        ``wait`` waits for the others."""
        with self._lock:
            self._shutdown = True
        pending = [f for f in list(self._futures) if not f.done()]
        if cancel_futures and pending:
            started = self._client.running_keys()
            for fut in pending:
                if fut.key not in started:
                    fut.cancel()
        if wait and pending:
            wait_all(pending)


def _results(fs: list[Future], end: float | None, chunked: bool) -> Iterator[Any]:
    """The results of ``fs`` in order, dropping each future as it is yielded (as the standard
    library's map does); what is left is cancelled when the loop ends early."""
    fs.reverse()
    try:
        while fs:
            left = None if end is None else end - time.monotonic()
            if chunked:
                yield from _result_or_cancel(fs.pop(), left)
            else:
                yield _result_or_cancel(fs.pop(), left)
    finally:
        for fut in fs:
            fut.cancel()


def _result_or_cancel(fut: Future, timeout: float | None) -> Any:
    try:
        return fut.result(timeout)
    finally:
        fut.cancel()  # a no-op once done; drops the task after a timeout
        del fut


def _run_chunk(fn: Callable, chunk: list[tuple]) -> list[Any]:
    """One task of ``Executor.map(chunksize=n)``: ``fn`` over up to n argument tuples."""
    return [fn(*args) for args in chunk]


__all__ = ["ClientExecutor"]
