"""The user API: :class:`Client` (and its :class:`ClientExecutor`), with its bookkeeping.

The client builds tasks (keys, pickled arguments, :class:`~hpcdist.runtime.scheduling.vocabulary.TaskSpec`),
sends them to the scheduler, counts the live futures of every key and releases a key once
its last future is gone, and turns the scheduler's instructions into finished futures.
:class:`Future`, :func:`as_completed` and :func:`wait` live in :mod:`hpcdist.runtime.futures`
and are importable from here too.

Futures are :class:`concurrent.futures.Future` objects, so the standard library's
``wait``/``as_completed`` work on them. A future becomes *done* when its result exists on a
worker; :meth:`Future.result` then brings the value to rank 0. Results otherwise stay where
they were computed, and tasks that take futures as arguments fetch them worker to worker.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import functools
import hashlib
import itertools
import pickle
import queue
import sys
import threading
import time
import uuid
import weakref
from typing import Any, Callable, Iterable, Iterator, Sequence

from hpcdist.errors import HpcdistError, RemoteError, RemoteTraceback
from hpcdist.runtime import messages as m
from hpcdist.runtime import serialize
from hpcdist.runtime.scheduling.vocabulary import Cancelled, Erred, Memory, TaskSpec
from hpcdist.runtime.scheduling import tables
from hpcdist.runtime.futures import (
    _FINISHED, ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, Future, _collect, _finish, _init_future,
    _is_container, _rebuild, _set_cancelled, _wait_all, as_completed, check_timeout, wait,
)
from hpcdist.runtime.world import World, current_world, set_current_world, start_world


#: task errors whose rank-0 exception object is kept, so dependents raise the very same one
_ERRORS_KEPT = 1024


class _Releases:
    """Keys whose last future was dropped, until the scheduler takes them.

    When a batch opens, its :meth:`take` goes to the world as a doorbell, which the
    scheduler rings once it has handled every message sent before it. See
    :meth:`Client._release` for why a release can never undo a newer submit.
    """

    __slots__ = ("client", "gen", "keys")

    def __init__(self, client: Client, gen: int) -> None:
        self.client = client
        self.gen = gen
        self.keys: list[str] = []

    def take(self) -> list[str]:
        """The keys released so far whose key has no live future again (scheduler thread);
        later releases go to a new batch."""
        client = self.client
        client._lock.acquire()
        try:
            if client._batch is self:
                client._batch = None
            live = client._futures
            keys = [k for k in self.keys if k not in live]
            self.keys = []
        finally:
            client._unlock()
        return keys


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
        # _lock guards _futures, _small and the release batch; __del__ never blocks on it
        # (see _unregister). _cond is the condition all this client's futures share.
        self._lock = threading.Lock()
        self._rlock = threading.RLock()  # the condition's lock: `with self._rlock` skips a Python frame
        self._cond = threading.Condition(self._rlock)
        self._futures: dict[str, list] = {}  # key -> [number of live futures, weakref, weakref ...]
        self._dropped: collections.deque[str] = collections.deque()  # keys of dropped futures, not yet counted
        self._batch: _Releases | None = None
        self._gens = itertools.count(1)
        self._gen = 0  # changes after every submit: see _release
        self._errors: dict[int, tuple[Any, BaseException]] = {}
        self._small: dict[str, bytes] = {}  # pickles of small results, sent along with "memory"
        self._drops = 0  # keys released since _futures and _small were checked for shrinking
        # fresh keys: a counter behind a token unique to this client (uuid4 per task cost ~5 us)
        self._token = uuid.uuid4().hex[:12]
        self._counter = itertools.count()
        self._fn_cache: dict[int, tuple[Any, str, bytes]] = {}
        self._callbacks: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        threading.Thread(target=self._run_callbacks, name="hpcdist-callbacks", daemon=True).start()
        world.listen(self._on_instruction)

    # ---- futures bookkeeping ------------------------------------------------------------------
    #
    # A key is released when its last future dies. Future.__del__ can run in any thread at
    # any allocation (the garbage collector), also while this very thread holds _lock, so it
    # never waits for _lock: it queues the key in _dropped and counts it only if the lock is
    # free; otherwise the holder counts it in _unlock, before it lets go.

    def _register(self, futures: Iterable[Future]) -> None:
        refs = [(f.key, weakref.ref(f)) for f in futures]
        self._lock.acquire()
        try:
            table = self._futures
            for key, ref in refs:
                entry = table.get(key)
                if entry is None:
                    table[key] = [1, ref]
                else:
                    entry[0] += 1
                    entry.append(ref)
        finally:
            self._unlock()

    def _unregister(self, key: str) -> None:
        if sys is None or self._closed:  # interpreter shutdown or client closed
            return
        self._dropped.append(key)
        if self._lock.acquire(False):
            self._unlock()

    def _unlock(self) -> None:
        """Count the dropped futures, then release ``_lock``."""
        while True:
            try:
                if self._dropped:
                    self._count_dropped()
            finally:
                self._lock.release()
            # a key queued after the check above, by a thread that found the lock taken
            if not self._dropped or not self._lock.acquire(False):
                return

    def _count_dropped(self) -> None:
        dropped = self._dropped
        while dropped:
            key = dropped.popleft()
            entry = self._futures.get(key)
            if entry is None:
                continue
            entry[0] -= 1
            if entry[0] > 0:
                if len(entry) > 2 * entry[0] + 8:  # many dead weakrefs: prune
                    entry[1:] = [r for r in entry[1:] if r() is not None]
                continue
            del self._futures[key]
            self._small.pop(key, None)
            self._release(key)
            self._drops += 1
        if self._drops >= 1024:
            self._drops = 0
            tables.shrink(self._futures)
            # result() reads _small without the lock: it gets a new dict, not one rebuilt in place
            self._small = tables.shrunk(self._small)

    def _release(self, key: str) -> None:
        """Tell the scheduler that no future needs ``key`` any more (``_lock`` held).

        Ordering: a batch takes keys only until the next submit has been sent (``_gen``
        changes right after every send), and the world rings its doorbell only after every
        message sent before the batch opened has been handled. So a release never comes
        before the submit it follows. A key submitted again after its release has a live
        future again when the doorbell rings, and :meth:`_Releases.take` leaves it out: a
        release never undoes a newer submit either. No message is sent: the scheduler
        rings doorbells at the end of its rounds, off the path of the next submit, where a
        message of its own cost every submit-then-drop round trip about 25 µs. The
        doorbell must not be rung inside :meth:`World.doorbell` (:meth:`_Releases.take`
        needs ``_lock``).
        """
        batch = self._batch
        if batch is None or batch.gen != self._gen:
            batch = self._batch = _Releases(self, self._gen)
            self._world.doorbell(batch.take)
        batch.keys.append(key)

    def _sent(self) -> None:
        """A submit (or scatter) has been sent: later releases go to a new batch."""
        self._gen = next(self._gens)

    def _live(self, key: str, small: bytes | None = None) -> list[Future]:
        """The live futures of ``key``; keeps ``small`` (its result's pickle) if there are any."""
        self._lock.acquire()
        try:
            entry = self._futures.get(key)
            if entry is None:
                return []
            if small is not None:
                self._small[key] = small
            refs = entry[1:]
        finally:
            self._unlock()
        return [f for f in (r() for r in refs) if f is not None]

    def _on_instruction(self, ins: Memory | Erred | Cancelled) -> None:
        kind = ins.__class__
        if kind is Memory:
            _finish(self, self._live(ins.key, ins.data), None)
        elif kind is Erred:
            _finish(self, self._live(ins.key), self._exception(ins.error))
        elif kind is Cancelled:
            _set_cancelled(self, self._live(ins.key))

    def _exception(self, error: Any) -> BaseException:
        """The exception to raise on rank 0 for a task error (one object per failure)."""
        cached = self._errors.get(id(error))
        if cached is not None and cached[0] is error:
            return cached[1]
        if isinstance(error, BaseException):
            exc = error
        else:
            exc_bytes, text, rank, host, size = error
            try:
                exc = serialize.loads(exc_bytes)
            except Exception as load_error:  # noqa: BLE001 - its class may not be importable on rank 0
                exc = RemoteError(f"the task's exception cannot be unpickled on rank 0 "
                                  f"({type(load_error).__name__}: {load_error}); its traceback follows")
            exc.__cause__ = RemoteTraceback(f"task failed on rank {rank} of {size} on host {host}:\n{text}")
        if len(self._errors) >= _ERRORS_KEPT:  # dependents are notified together: recent ones suffice
            del self._errors[next(iter(self._errors))]
        self._errors[id(error)] = (error, exc)
        return exc

    def _run_callbacks(self) -> None:
        # futures a task finished; concurrent.futures' own _invoke_callbacks logs a raising
        # callback ("exception calling callback for ...") and goes on with the others
        while True:
            fut = self._callbacks.get()
            fut._invoke_callbacks()
            del fut

    # ---- submitting ---------------------------------------------------------------------------

    def _caller(self, fn: Callable, pure: bool, workers: Any, allow_other_workers: bool,
                retries: int) -> _Caller:
        """What every task of one submit/map call shares, worked out once."""
        cached = self._fn_cache.get(id(fn))
        if cached is None or cached[0]() is not fn:
            if not callable(fn):
                raise TypeError(f"{fn!r:.80} is not callable")
            fn_bytes = serialize.dumps(fn)[0]
            fn_id = hashlib.blake2b(fn_bytes, digest_size=12).hexdigest()
            name = getattr(fn, "__name__", type(fn).__name__)
            # keys of pure calls: a hash of fn_id and the arguments, started here once per function
            hasher = hashlib.blake2b(fn_id.encode(), digest_size=16)
            try:  # weakly: the client keeps no object of the caller's alive (a bound method's self)
                ref: Callable[[], Any] = weakref.ref(fn)
            except TypeError:  # builtins and the like cannot be weakly referenced (nor leak)
                ref = functools.partial(_same, fn)
            cached = (ref, fn_id, fn_bytes, name, hasher)
            if len(self._fn_cache) > 4096:
                self._fn_cache.clear()
            self._fn_cache[id(fn)] = cached
        _, fn_id, fn_bytes, name, hasher = cached
        return _Caller(self, fn_id, fn_bytes, name, hasher if pure else None, self._ranks(workers),
                       allow_other_workers, retries)

    def submit(self, fn: Callable, /, *args: Any, key: str | None = None, pure: bool = True,
               workers: Any = None, allow_other_workers: bool = False, retries: int = 0,
               **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` on a worker.

        ``fn`` is positional-only, so ``fn`` and ``self`` reach the function as keywords;
        ``key``, ``pure``, ``workers``, ``allow_other_workers`` and ``retries`` are this
        method's own (as in dask). :meth:`get_executor`'s ``submit`` passes every keyword on.

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

        Raises:
            TypeError, ValueError: a bad argument (checked here, before anything is sent).
            HpcdistError: ``workers`` names no worker of this world.
        """
        return self._submit(fn, args, kwargs, key, pure, workers, allow_other_workers, retries)

    def _submit(self, fn: Callable, args: tuple, kwargs: dict, key: Any, pure: Any, workers: Any,
                allow_other_workers: Any, retries: Any) -> Future:
        _check_options("submit", key, pure, allow_other_workers, retries)
        self._check_open()
        task = self._caller(fn, pure, workers, allow_other_workers, retries).task(args, kwargs, key)
        fut = Future(task[0].key, self)
        self._world.send((m.SUBMIT, [task]))
        self._sent()
        return fut

    def map(self, fn: Callable, /, *iterables: Iterable, key: str | Sequence[str] | None = None,
            pure: bool = True, workers: Any = None, allow_other_workers: bool = False,
            retries: int = 0, **kwargs: Any) -> list[Future]:
        """Submit ``fn`` over the items of ``iterables`` (like :func:`map`), in one message.

        Args:
            key: None (derived keys), a prefix (``"{key}-{i}"``) or one key per item.
            **kwargs: keyword arguments of every call. Others as in :meth:`submit`.

        Returns:
            One future per item, in order.
        """
        for i, it in enumerate(iterables):
            if not hasattr(it, "__iter__"):
                raise TypeError(f"map() argument {i + 2} must be iterable, not {type(it).__name__}")
        return self._map(fn, list(zip(*iterables)), kwargs, key, pure, workers, allow_other_workers, retries)

    def _map(self, fn: Callable, items: list[tuple], kwargs: dict, key: Any, pure: Any, workers: Any,
             allow_other_workers: Any, retries: Any) -> list[Future]:
        _check_options("map", None, pure, allow_other_workers, retries)
        self._check_open()
        if isinstance(key, str):
            keys: list[str | None] = [f"{key}-{i}" for i in range(len(items))]
        elif key is None:
            keys = [None] * len(items)
        elif _is_container(key):
            keys = list(key)
            if len(keys) != len(items):
                raise ValueError(f"map got {len(keys)} keys for {len(items)} items")
            for k in keys:
                if not isinstance(k, str):
                    raise TypeError(f"map: every key must be a str, not {type(k).__name__} {k!r:.80}")
        else:
            raise TypeError(f"map: key must be None, a str prefix or a list of str, not {type(key).__name__}")
        make = self._caller(fn, pure, workers, allow_other_workers, retries).task
        tasks = [make(args, kwargs, k) for args, k in zip(items, keys)]
        new = Future.__new__
        futures = []
        for task in tasks:
            fut = new(Future)
            _init_future(fut, task[0].key, self)
            futures.append(fut)
        self._register(futures)
        if tasks:
            self._world.send((m.SUBMIT, tasks))
            self._sent()
        return futures

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this hpcdist client is closed: cannot submit new tasks")

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
        if not isinstance(broadcast, bool):
            raise TypeError(f"scatter: broadcast must be True or False, not {broadcast!r:.80}")
        self._check_open()
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
        self._sent()
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
        elif not _is_container(workers):
            raise TypeError(f"workers must be a rank, a host name or a list of them, not {type(workers).__name__}")
        info = self._world.info
        ranks = set()
        for w in workers:
            if isinstance(w, bool) or not isinstance(w, (int, str)):
                raise TypeError(f"workers: {w!r:.80} is neither a rank (int) nor a host name (str)")
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
                values[key] = serialize.load_result(key, small)  # in-band only: see worker.INLINE_MAX
        if remote:
            raw = self._world.call((m.GATHER, remote))
            values.update((k, serialize.load_result(k, data, buffers)) for k, (data, buffers) in raw.items())
        return values

    def gather(self, futures: Any, errors: str = "raise") -> Any:
        """Wait for futures and return their values, keeping the shape of ``futures``.

        Args:
            futures: a future, or any iterable of futures (a list, a generator, an iterator:
                a list comes back), or any nesting of lists, tuples, sets and dicts of futures.
                Other values are returned as they are.
            errors: ``"raise"`` the first task error, or ``"skip"`` failed items.

        Raises:
            The first failed task's exception, ``concurrent.futures.CancelledError`` for a
            cancelled one (``errors="raise"``); ValueError for a future of another client.
        """
        if errors not in ("raise", "skip"):
            raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
        if _is_container(futures) and not isinstance(futures, (list, tuple, set, frozenset)):
            futures = list(futures)  # an iterator or a generator: its futures, once
        flat: list[Future] = []
        _collect(futures, flat)
        self._check_own(flat, "gather")
        _wait_all(self, flat)
        bad = set()
        for fut in flat:
            if fut._state is not _FINISHED or fut._exception is not None:  # cancelled or failed
                if errors == "raise":
                    if fut.cancelled():
                        raise cf.CancelledError(f"task {fut.key!r} was cancelled")
                    raise fut.exception()
                bad.add(fut.key)
        remote = [f.key for f in flat if f.key not in bad and not f._local]
        values = self._fetch(remote) if remote else {}
        return _rebuild(futures, values, bad)

    def _check_own(self, flat: list[Future], where: str) -> None:
        for fut in flat:
            if fut.client is not self:
                raise ValueError(f"{where}: {fut!r} belongs to another client" if fut.client is not None
                                 else f"{where}: {fut!r} is not a task's future")

    def _futures_arg(self, futures: Any, where: str) -> list[Future]:
        """The futures in a future or a (nested) container of futures; TypeError for anything else."""
        if _is_container(futures) and not isinstance(futures, (list, tuple, set, frozenset)):
            futures = list(futures)
        other = _first_non_future(futures)
        if other is not _NONE:
            raise TypeError(f"{where}() takes a future or a list/dict of futures; it got {type(other).__name__} "
                            f"{other!r:.80}")
        flat: list[Future] = []
        _collect(futures, flat)
        self._check_own(flat, where)
        return flat

    def cancel(self, futures: Any) -> None:
        """Cancel unfinished tasks (and what depends on them); finished ones are left alone.

        The futures become cancelled once the scheduler answers (``Future.cancel()`` marks
        its future cancelled at once).
        """
        flat = self._futures_arg(futures, "cancel")
        if flat:
            self._cancel_keys(tuple(f.key for f in flat))

    def _cancel_keys(self, keys: tuple[str, ...]) -> None:
        self._world.send((m.CANCEL, keys))

    def who_has(self, futures: Any = None) -> dict[str, list[int]]:
        """Which worker ranks hold each key (all keys, or those of ``futures``)."""
        keys = None
        if futures is not None:
            keys = [f.key for f in self._futures_arg(futures, "who_has")]
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

    def _started(self) -> set[str]:
        """Keys a worker is running now, as far as rank 0 knows: the first key assigned to each
        worker (workers run their tasks in assignment order)."""
        def first_keys(sched: Any) -> set[str]:
            state = sched.state
            if not hasattr(state, "processing_on"):  # the local backend: nothing runs in the background
                return set()
            return {keys[0] for keys in map(state.processing_on, state.workers) if keys}

        return self._world.call((m.QUERY, first_keys))

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


class _Caller:
    """Builds the tasks of one submit/map call: per-call work once, per-item work per item."""

    def __init__(self, client: Client, fn_id: str, fn_bytes: bytes, name: str, hasher: Any,
                 ranks: frozenset[int] | None, allow_other_workers: bool, retries: int) -> None:
        self.client = client
        self.fn_id = fn_id
        self.fn_bytes = fn_bytes
        self.name = name
        self.hasher = hasher  # None for impure calls: fresh keys
        self.ranks = ranks
        self.allow_other_workers = allow_other_workers
        self.retries = retries

    def task(self, args: tuple, kwargs: dict, key: str | None) -> tuple:
        """``(TaskSpec, fn_id, fn_bytes, data, buffers)`` for ``fn(*args, **kwargs)``."""
        if serialize.is_plain_call(args, kwargs):
            # no future can hide in plain values; the C pickler writes the very bytes the
            # general path would (so the key is the same either way), several times faster
            data = pickle.dumps((args, kwargs), serialize.PROTOCOL)
            buffers: list = []
            deps: tuple = ()
        else:
            data, buffers, deps = self._dumps_with_futures(args, kwargs)
        if key is None:
            if self.hasher is not None:
                h = self.hasher.copy()
                h.update(data)
                for b in buffers:
                    h.update(b)
                key = f"{self.name}-{h.hexdigest()}"
            else:
                client = self.client
                key = f"{self.name}-{client._token}-{next(client._counter)}"
        # positional: half the cost of keywords, and this runs once per task
        spec = TaskSpec(key, deps, self.name, self.ranks, self.allow_other_workers, self.retries)
        return spec, self.fn_id, self.fn_bytes, data, buffers

    def _dumps_with_futures(self, args: tuple, kwargs: dict) -> tuple[bytes, list, tuple]:
        client = self.client
        deps: dict[str, None] = {}

        def persistent_id(obj: Any) -> Any:
            if isinstance(obj, Future):
                if obj.client is not client:
                    raise HpcdistError(f"future {obj.key!r} belongs to another client")
                deps[obj.key] = None
                return (m.FUTURE_REF, obj.key)
            return None

        data, buffers = serialize.dumps((args, kwargs), persistent_id=persistent_id)
        return data, buffers, tuple(deps)


class ClientExecutor(cf.Executor):
    """``concurrent.futures`` view of a client: behaves as the standard library's executors.

    Every call is impure (a fresh key), every keyword goes to ``fn``. ``shutdown`` ends this
    executor only (not the client): later ``submit``/``map`` raise RuntimeError. As in the
    standard library, a submitted call runs even if its future is dropped: the executor
    holds each future until it is done, and no longer (it keeps no finished result alive).
    """

    def __init__(self, client: Client) -> None:
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
            fut = self._client._submit(fn, args, kwargs, None, False, None, False, 0)
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
                fs = self._client._map(fn, items, {}, None, False, None, False, 0)
            else:
                chunks = [(items[i:i + chunksize],) for i in range(0, len(items), chunksize)]
                fs = self._client._map(functools.partial(_run_chunk, fn), chunks, {}, None, False, None, False, 0)
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
            started = self._client._started()
            for fut in pending:
                if fut.key not in started:
                    fut.cancel()
        if wait and pending:
            _wait_all(self._client, pending)


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


def _same(obj: Any) -> Any:
    return obj


_NONE = object()


def _first_non_future(obj: Any) -> Any:
    """The first value inside ``obj`` (lists, tuples, sets, dict values) that is no Future, or _NONE."""
    if isinstance(obj, Future):
        return _NONE
    if isinstance(obj, dict):
        items: Iterable = obj.values()
    elif isinstance(obj, (list, tuple, set, frozenset)):
        items = obj
    else:
        return obj
    for x in items:
        if not isinstance(x, Future):
            other = _first_non_future(x)
            if other is not _NONE:
                return other
    return _NONE


def _check_options(where: str, key: Any, pure: Any, allow_other_workers: Any, retries: Any) -> None:
    """The options of submit/map, checked in the caller's thread."""
    if key is not None and not isinstance(key, str):
        raise TypeError(f"{where}: key must be a str or None, not {type(key).__name__} {key!r:.80}")
    if key == "":
        raise ValueError(f"{where}: key must not be empty")
    for name, value in (("pure", pure), ("allow_other_workers", allow_other_workers)):
        if not isinstance(value, bool):
            raise TypeError(f"{where}: {name} must be True or False, not {value!r:.80}")
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise TypeError(f"{where}: retries must be an int, not {type(retries).__name__} {retries!r:.80}")
    if retries < 0:
        raise ValueError(f"{where}: retries must be 0 or more, not {retries}")


def table_sizes(client: Client) -> dict[str, int]:
    """Entries of every per-key table on rank 0: the client's (``client.``) and the scheduler's.

    A diagnostic (tests, ``hpcdist bench``): with every future dropped each is back to 0, the
    transition log aside (bounded by :data:`hpcdist.runtime.scheduling.state.LOG_MAX`); with K live
    futures each is O(K).
    """
    client._lock.acquire()
    try:
        sizes = {"client.futures": len(client._futures), "client.small": len(client._small),
                 "client.dropped": len(client._dropped),
                 "client.releasing": len(client._batch.keys) if client._batch is not None else 0}
    finally:
        client._unlock()
    sizes.update(client._world.call((m.QUERY, lambda s: s.table_sizes())))
    return sizes


def _install_abort_hook(world: World) -> None:
    """An uncaught exception on rank 0 ends the whole MPI job instead of hanging it."""
    previous = sys.excepthook

    def hook(exc_type: Any, exc: Any, tb: Any) -> None:
        previous(exc_type, exc, tb)
        sys.stderr.flush()
        if not world.closed:
            world.shutdown(1)  # every rank exits 1; aborts only if the workers do not answer

    sys.excepthook = hook


__all__ = [
    "Client", "Future", "as_completed", "wait", "ClientExecutor", "set_current_world",
    "FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED",
]
