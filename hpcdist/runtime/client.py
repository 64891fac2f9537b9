"""The user API: :class:`Client`, :class:`Future`, :func:`as_completed`, :func:`wait`.

Futures are :class:`concurrent.futures.Future` objects, so the standard library's
``wait``/``as_completed`` work on them. A future becomes *done* when its result exists on a
worker; :meth:`Future.result` then brings the value to rank 0. Results otherwise stay where
they were computed, and tasks that take futures as arguments fetch them worker to worker.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import itertools
import queue
import sys
import threading
import uuid
import weakref
from typing import Any, Callable, Iterable, Iterator, Sequence

from hpcdist.errors import CancelledError, HpcdistError, RemoteTraceback
from hpcdist.runtime import messages as m
from hpcdist.runtime import serialize
from hpcdist.runtime.state import TaskSpec
from hpcdist.runtime.world import World, current_world, set_current_world, start_world

FIRST_COMPLETED = cf.FIRST_COMPLETED
FIRST_EXCEPTION = cf.FIRST_EXCEPTION
ALL_COMPLETED = cf.ALL_COMPLETED


class Future(cf.Future):
    """A task's result, held by a worker.

    Attributes:
        key: the task's key; equal keys name the same result.
    """

    def __init__(self, key: str, client: Client) -> None:
        super().__init__()
        self.key = key
        self.client = client
        client._register(self)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the task and bring its value to rank 0.

        Raises:
            The task's own exception (with the remote traceback as ``__cause__``), or
            ``concurrent.futures.CancelledError`` if it was cancelled.
        """
        super().result(timeout)
        return self.client._fetch([self.key])[self.key]

    def cancel(self) -> bool:
        """Ask the scheduler to cancel this task; True once it is cancelled."""
        if self.done():
            return self.cancelled()
        self.client.cancel([self])
        cf.wait([self], timeout=5)
        return self.cancelled()

    def add_done_callback(self, fn: Callable[[cf.Future], Any]) -> None:
        """Call ``fn(future)`` when done, on hpcdist's callback thread (so it may call result())."""
        super().add_done_callback(lambda fut: self.client._callbacks.put((fn, fut)))

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


def _set_done(fut: Future, error: BaseException | None) -> None:
    try:
        if error is None:
            cf.Future.set_result(fut, None)
        else:
            cf.Future.set_exception(fut, error)
    except cf.InvalidStateError:
        pass


def _set_cancelled(fut: Future) -> None:
    if cf.Future.cancel(fut):
        fut.set_running_or_notify_cancel()


class Client:
    """Submit Python functions to the workers and collect their results.

    Under ``mpiexec -n N python script.py`` the client on rank 0 drives ranks 1..N-1; on
    those ranks ``Client()`` serves as a worker until the client closes and then ends the
    process, so nothing after it runs there. Under ``hpcdist exec`` the client attaches to
    the running world.

    Args:
        backend: ``"local"``, ``"thread"``, ``"process"`` or ``"mpi"`` (aliases accepted);
            default from ``HPCDIST_BACKEND``, else ``mpi`` inside an MPI world and
            ``process`` outside one.
        workers: number of workers for the thread and process backends (default: one
            per core).
    """

    def __init__(self, backend: str | None = None, workers: int | None = None) -> None:
        world = current_world()
        self._attached = world is not None and backend is None
        if not self._attached:
            world = start_world(backend, workers)
            if world.backend == "mpi":
                _install_abort_hook(world)
        self._world: World = world
        self.backend = world.backend
        self._lock = threading.Lock()
        self._futures: dict[str, list[weakref.ref]] = {}
        self._refs: dict[str, int] = {}
        self._errors: dict[int, tuple[Any, BaseException]] = {}
        self._small: dict[str, bytes] = {}  # pickles of small results, sent along with "memory"
        # fresh keys: a counter behind a token unique to this client (uuid4 per task cost ~5 us)
        self._token = uuid.uuid4().hex[:12]
        self._counter = itertools.count()
        self._fn_cache: dict[int, tuple[Any, str, bytes]] = {}
        self._callbacks: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        threading.Thread(target=self._run_callbacks, name="hpcdist-callbacks", daemon=True).start()
        world.listen(self._on_instruction)

    # ---- futures bookkeeping ------------------------------------------------------------------

    def _register(self, fut: Future) -> None:
        with self._lock:
            self._futures.setdefault(fut.key, []).append(weakref.ref(fut))
            self._refs[fut.key] = self._refs.get(fut.key, 0) + 1

    def _unregister(self, key: str) -> None:
        if sys is None or self._closed:  # interpreter shutdown or client closed
            return
        with self._lock:
            count = self._refs.get(key, 0) - 1
            if count > 0:
                self._refs[key] = count
                return
            self._refs.pop(key, None)
            self._futures.pop(key, None)
            self._small.pop(key, None)
        try:
            self._world.send((m.RELEASE, (key,)))
        except HpcdistError:
            pass

    def _live(self, key: str) -> list[Future]:
        with self._lock:
            refs = self._futures.get(key, ())
            return [f for f in (r() for r in refs) if f is not None]

    def _on_instruction(self, ins: tuple) -> None:
        kind, key = ins[0], ins[1]
        if kind == "memory":
            if len(ins) > 2:
                self._small[key] = ins[2]
            for fut in self._live(key):
                _set_done(fut, None)
        elif kind == "erred":
            error = self._exception(ins[2])
            for fut in self._live(key):
                _set_done(fut, error)
        elif kind == "cancelled":
            for fut in self._live(key):
                _set_cancelled(fut)

    def _exception(self, error: Any) -> BaseException:
        """The exception to raise on rank 0 for a task error (one object per failure)."""
        cached = self._errors.get(id(error))
        if cached is not None and cached[0] is error:
            return cached[1]
        if isinstance(error, BaseException):
            exc = error
        else:
            exc_bytes, text, rank, host, size = error
            exc = serialize.loads(exc_bytes)
            exc.__cause__ = RemoteTraceback(f"task failed on rank {rank} of {size} on host {host}:\n{text}")
        self._errors[id(error)] = (error, exc)
        return exc

    def _run_callbacks(self) -> None:
        while True:
            fn, fut = self._callbacks.get()
            try:
                fn(fut)
            except Exception:  # noqa: BLE001 - like concurrent.futures: log and go on
                import traceback

                sys.stderr.write("hpcdist: exception in a future's done callback:\n" + traceback.format_exc())

    # ---- submitting ---------------------------------------------------------------------------

    def _function(self, fn: Callable) -> tuple[str, bytes]:
        cached = self._fn_cache.get(id(fn))
        if cached is None or cached[0] is not fn:
            fn_bytes = serialize.dumps(fn)[0]
            cached = (fn, hashlib.blake2b(fn_bytes, digest_size=12).hexdigest(), fn_bytes)
            if len(self._fn_cache) > 4096:
                self._fn_cache.clear()
            self._fn_cache[id(fn)] = cached
        return cached[1], cached[2]

    def _task(self, fn: Callable, args: tuple, kwargs: dict, key: str | None, pure: bool,
              workers: Any, allow_other_workers: bool, retries: int) -> tuple:
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        fn_id, fn_bytes = self._function(fn)
        deps: dict[str, None] = {}

        def persistent_id(obj: Any) -> Any:
            if isinstance(obj, Future):
                if obj.client is not self:
                    raise HpcdistError(f"future {obj.key!r} belongs to another client")
                deps[obj.key] = None
                return (m.FUTURE_REF, obj.key)
            return None

        data, buffers = serialize.dumps((args, kwargs), persistent_id=persistent_id)
        name = getattr(fn, "__name__", type(fn).__name__)
        if key is None:
            if pure:
                h = hashlib.blake2b(fn_id.encode(), digest_size=16)
                h.update(data)
                for b in buffers:
                    h.update(b)
                key = f"{name}-{h.hexdigest()}"
            else:
                key = f"{name}-{self._token}-{next(self._counter)}"
        spec = TaskSpec(key=key, deps=tuple(deps), fn_name=name, workers=self._ranks(workers),
                        allow_other_workers=allow_other_workers, retries=retries)
        return spec, fn_id, fn_bytes, data, buffers

    def submit(self, fn: Callable, *args: Any, key: str | None = None, pure: bool = True,
               workers: Any = None, allow_other_workers: bool = False, retries: int = 0,
               **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` on a worker.

        Args:
            fn: any picklable callable (cloudpickle: lambdas and closures work).
            *args: arguments; futures anywhere inside them (also nested in lists, tuples,
                dicts) are replaced by their values on the worker.
            key: the result's name; default derived from ``fn`` and the arguments.
            pure: equal calls share one key (computed once); False gives a fresh key.
            workers: MPI ranks (ints) or host names allowed to run the task.
            allow_other_workers: treat ``workers`` as a preference only.
            retries: how many times to rerun the task after it raised.
            **kwargs: keyword arguments of ``fn``.

        Returns:
            The task's future.
        """
        task = self._task(fn, args, kwargs, key, pure, workers, allow_other_workers, retries)
        fut = Future(task[0].key, self)
        self._world.send((m.SUBMIT, [task]))
        return fut

    def map(self, fn: Callable, *iterables: Iterable, key: str | Sequence[str] | None = None,
            pure: bool = True, workers: Any = None, allow_other_workers: bool = False,
            retries: int = 0, **kwargs: Any) -> list[Future]:
        """Submit ``fn`` over the items of ``iterables`` (like :func:`map`), in one message.

        Args:
            key: None (derived keys), a prefix (``"{key}-{i}"``) or one key per item.
            Others as in :meth:`submit`.

        Returns:
            One future per item, in order.
        """
        items = list(zip(*iterables))
        if isinstance(key, str):
            keys: list[str | None] = [f"{key}-{i}" for i in range(len(items))]
        elif key is None:
            keys = [None] * len(items)
        else:
            keys = list(key)
            if len(keys) != len(items):
                raise ValueError(f"map got {len(keys)} keys for {len(items)} items")
        tasks = [self._task(fn, args, kwargs, k, pure, workers, allow_other_workers, retries)
                 for args, k in zip(items, keys)]
        futures = [Future(t[0].key, self) for t in tasks]
        if tasks:
            self._world.send((m.SUBMIT, tasks))
        return futures

    def scatter(self, data: Any, workers: Any = None, broadcast: bool = False) -> Any:
        """Put data on workers and return futures for it.

        Args:
            data: one object, or a list/tuple (scattered element-wise, spread over the
                workers) or a dict (one future per value).
            workers: ranks or host names to put the data on.
            broadcast: put a copy on every (allowed) worker.

        Returns:
            A future, or a list/dict of futures shaped like ``data``.
        """
        allowed = sorted(self._ranks(workers) or self._world.info)
        if isinstance(data, dict):
            values, shape = list(data.values()), "dict"
        elif isinstance(data, (list, tuple)):
            values, shape = list(data), "list"
        else:
            values, shape = [data], "one"
        items, futures = [], []
        for i, value in enumerate(values):
            key = f"{type(value).__name__}-{self._token}-{next(self._counter)}"
            payload, buffers = serialize.dumps(value)
            if broadcast:
                ranks: list[int] | None = allowed
            elif workers is not None:
                ranks = [allowed[i % len(allowed)]]
            else:
                ranks = None
            items.append((key, ranks, payload, buffers))
            futures.append(Future(key, self))
        self._world.send((m.SCATTER, items))
        if shape == "one":
            return futures[0]
        if shape == "dict":
            return dict(zip(data.keys(), futures))
        return futures

    def _ranks(self, workers: Any) -> frozenset[int] | None:
        if workers is None:
            return None
        if isinstance(workers, (int, str)):
            workers = [workers]
        info = self._world.info
        ranks = set()
        for w in workers:
            if isinstance(w, int) and w in info:
                ranks.add(w)
            elif isinstance(w, str) and any(i["host"] == w for i in info.values()):
                ranks.update(r for r, i in info.items() if i["host"] == w)
            else:
                known = ", ".join(f"{r} ({i['host']})" for r, i in sorted(info.items()))
                raise HpcdistError(f"no worker {w!r}: workers are ranks {known}")
        return frozenset(ranks)

    # ---- results ----------------------------------------------------------------------------------

    def _fetch(self, keys: Sequence[str]) -> dict[str, Any]:
        """Bring the values of finished keys to rank 0 (small ones are already here)."""
        values = {}
        remote = []
        for key in dict.fromkeys(keys):
            small = self._small.get(key)
            if small is None:
                remote.append(key)
            else:
                values[key] = serialize.loads(small)
        if remote:
            raw = self._world.call((m.GATHER, remote))
            values.update((k, serialize.loads(data, buffers)) for k, (data, buffers) in raw.items())
        return values

    def gather(self, futures: Any, errors: str = "raise") -> Any:
        """Wait for futures and return their values, keeping the shape of ``futures``.

        Args:
            futures: a future, or any nesting of lists, tuples and dicts of futures.
            errors: ``"raise"`` the first task error, or ``"skip"`` failed items.
        """
        if errors not in ("raise", "skip"):
            raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
        flat: list[Future] = []
        _collect(futures, flat)
        cf.wait(flat)
        bad = set()
        for fut in flat:
            if fut.cancelled() or fut.exception() is not None:
                if errors == "raise":
                    if fut.cancelled():
                        raise CancelledError(f"task {fut.key!r} was cancelled")
                    raise fut.exception()
                bad.add(fut.key)
        values = self._fetch([f.key for f in flat if f.key not in bad]) if len(bad) < len(flat) else {}
        return _rebuild(futures, values, bad)

    def cancel(self, futures: Any) -> None:
        """Cancel unfinished tasks (and what depends on them); finished ones are left alone."""
        flat: list[Future] = []
        _collect(futures, flat)
        self._world.send((m.CANCEL, tuple(f.key for f in flat)))

    def who_has(self, futures: Any = None) -> dict[str, list[int]]:
        """Which worker ranks hold each key (all keys, or those of ``futures``)."""
        keys = None
        if futures is not None:
            flat: list[Future] = []
            _collect(futures, flat)
            keys = [f.key for f in flat]
        return self._world.call((m.QUERY, lambda s: s.state.who_has(keys)))

    def has_what(self) -> dict[int, list[str]]:
        """The keys each worker rank holds."""
        return self._world.call((m.QUERY, lambda s: s.state.has_what()))

    @property
    def nworkers(self) -> int:
        """How many workers the world has."""
        return len(self._world.info)

    @property
    def workers(self) -> dict[int, dict[str, Any]]:
        """Worker rank -> ``{"host": name, "cores": n}``."""
        return {r: {"host": i["host"], "cores": i["cores"]} for r, i in sorted(self._world.info.items())}

    @property
    def walltime_warning(self) -> threading.Event:
        """Set once the batch system's walltime warning (SIGUSR1) reached rank 0.

        A driver can check it between rounds of work and stop submitting in time.
        """
        from hpcdist.runtime.world import walltime_warning

        return walltime_warning

    def get_executor(self) -> ClientExecutor:
        """A :class:`concurrent.futures.Executor` running on this client's workers."""
        return ClientExecutor(self)

    def close(self) -> None:
        """Shut the world down (or, attached under ``hpcdist exec``, just detach)."""
        self._shutdown(0)

    def _shutdown(self, code: int) -> None:
        if self._closed:
            return
        self._world.unlisten(self._on_instruction)
        self._closed = True
        if not self._attached:
            self._world.shutdown(code)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # A driver that fails takes the workers down with a non-zero status.
        self._shutdown(0 if exc_type is None else 1)

    def __repr__(self) -> str:
        return f"<hpcdist.Client backend={self.backend!r} workers={self.nworkers}>"


class ClientExecutor(cf.Executor):
    """``concurrent.futures`` view of a client: every call is impure (``pure=False``)."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._futures: weakref.WeakSet[Future] = weakref.WeakSet()

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        fut = self._client.submit(fn, *args, pure=False, **kwargs)
        self._futures.add(fut)
        return fut

    def map(self, fn: Callable, *iterables: Iterable, timeout: float | None = None,
            chunksize: int = 1) -> Iterator[Any]:
        futures = self._client.map(fn, *iterables, pure=False)
        self._futures.update(futures)

        def results() -> Iterator[Any]:
            import time

            deadline = None if timeout is None else time.monotonic() + timeout
            for fut in futures:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                yield fut.result(left)

        return results()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pending = [f for f in list(self._futures) if not f.done()]
        if cancel_futures and pending:
            self._client.cancel(pending)
        if wait:
            cf.wait(pending)


def _collect(obj: Any, out: list[Future]) -> None:
    if isinstance(obj, Future):
        out.append(obj)
    elif isinstance(obj, (list, tuple, set)):
        for x in obj:
            _collect(x, out)
    elif isinstance(obj, dict):
        for x in obj.values():
            _collect(x, out)


def _rebuild(obj: Any, values: dict[str, Any], bad: set[str]) -> Any:
    if isinstance(obj, Future):
        return values[obj.key]
    if isinstance(obj, (list, tuple)):
        items = [_rebuild(x, values, bad) for x in obj if not (isinstance(x, Future) and x.key in bad)]
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
    """Wait for futures, like :func:`concurrent.futures.wait`."""
    return cf.wait(list(futures), timeout=timeout, return_when=return_when)


def _install_abort_hook(world: World) -> None:
    """An uncaught exception on rank 0 ends the whole MPI job instead of hanging it."""
    previous = sys.excepthook

    def hook(exc_type: Any, exc: Any, tb: Any) -> None:
        previous(exc_type, exc, tb)
        sys.stderr.flush()
        if not world.closed:
            world.shutdown(1)  # every rank exits 1; aborts only if the workers do not answer

    sys.excepthook = hook


__all__ = ["Client", "Future", "as_completed", "wait", "ClientExecutor", "set_current_world"]
