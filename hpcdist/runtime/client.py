"""The user API: :class:`Client`.

The client builds tasks (keys, pickled arguments, :class:`~hpcdist.runtime.scheduling.vocabulary.TaskSpec`),
sends them to the scheduler, and turns the scheduler's instructions into finished futures.
Its :class:`~hpcdist.runtime.futuretable.FutureTable` counts the live futures of every key
and releases a key once its last future is gone. :class:`Future` lives in
:mod:`hpcdist.runtime.futures`, :func:`as_completed` and :func:`wait` in
:mod:`hpcdist.runtime.waiting`; all three are importable from here too;
:meth:`Client.get_executor` gives a :class:`~hpcdist.runtime.executor.ClientExecutor`.

Futures are :class:`concurrent.futures.Future` objects, so the standard library's
``wait``/``as_completed`` work on them. A future becomes *done* when its result exists on a
worker; :meth:`Future.result` then brings the value to rank 0. Results otherwise stay where
they were computed, and tasks that take futures as arguments fetch them worker to worker.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable, Iterable, Sequence

from hpcdist.errors import HpcdistError, RemoteError, RemoteTraceback
from hpcdist.runtime import messages as m
from hpcdist.runtime import serialize
from hpcdist.runtime.calls import Calls
from hpcdist.runtime.executor import ClientExecutor
from hpcdist.runtime.losses import WorkerLoss, call_hooks
from hpcdist.runtime.scheduling.vocabulary import Cancelled, Erred, Memory
from hpcdist.runtime.futures import (
    Future, collect, failed_keys, fetch_values, finish, is_container, new_futures, rebuild, set_cancelled,
)
from hpcdist.runtime.futuretable import FutureTable
from hpcdist.runtime.waiting import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, as_completed, wait, wait_all
from hpcdist.runtime.world import World, current_world, set_current_world, start_world


#: task errors whose rank-0 exception object is kept, so dependents raise the very same one
_ERRORS_KEPT = 1024


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
        #: the live futures of every key, their shared condition and their releases
        self.future_table = FutureTable(world)
        self._errors: dict[int, tuple[Any, BaseException]] = {}
        self._calls = Calls(self)
        self._closed = False
        self._lost_hooks: list[Callable[[int, str], Any]] = []
        world.listen(self._on_instruction)

    def _on_instruction(self, ins: Memory | Erred | Cancelled) -> None:
        kind = ins.__class__
        if kind is Memory:
            finish(self.future_table, self.future_table.live(ins.key), None, ins.data)
        elif kind is Erred:
            finish(self.future_table, self.future_table.live(ins.key), self._exception(ins.error))
        elif kind is Cancelled:
            set_cancelled(self.future_table, self.future_table.live(ins.key))
        elif kind is WorkerLoss and self._lost_hooks:
            self.future_table.call_later([lambda: call_hooks(self._lost_hooks, ins)])

    def on_worker_lost(self, callback: Callable[[int, str], Any]) -> Callable[[int, str], Any]:
        """Call ``callback(rank, reason)`` once for every worker lost from now on (see :attr:`lost_workers`).

        On the futures' done-callback thread (it may block or call ``result()``), once rank 0 handed
        the lost work to the survivors; what it raises is logged, never raised. Usable as a decorator.
        What the loss cost is in :attr:`recoveries` by then (its last entry for ``rank``).

        Args:
            callback: called with the lost worker's rank and the reason (e.g. its exit status).

        Returns: ``callback``.
        """
        if not callable(callback):
            raise TypeError(f"on_worker_lost() takes a callable, not {type(callback).__name__}")
        self._lost_hooks.append(callback)
        return callback

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

    # ---- submitting ---------------------------------------------------------------------------

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
        _check_options("submit", key, pure, allow_other_workers, retries)
        self._check_open()
        task = self._calls.caller(fn, pure, self._ranks, workers, allow_other_workers, retries).task(args, kwargs, key)
        fut = Future(task[0].key, self)
        self._world.send((m.SUBMIT, [task]))
        self.future_table.sent()
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
        return self.starmap(fn, list(zip(*iterables)), kwargs, key=key, pure=pure, workers=workers,
                            allow_other_workers=allow_other_workers, retries=retries)

    def starmap(self, fn: Callable, items: Sequence[tuple], kwargs: dict[str, Any] | None = None, *,
                key: str | Sequence[str] | None = None, pure: bool = True, workers: Any = None,
                allow_other_workers: bool = False, retries: int = 0) -> list[Future]:
        """Submit ``fn(*args, **kwargs)`` for every ``args`` tuple of ``items``, in one message.

        As :meth:`map`, with the arguments of each call ready-made (as
        :func:`itertools.starmap` takes them) and ``fn``'s keyword arguments as a dict, so
        any name reaches ``fn`` (:meth:`get_executor` submits this way).

        Args:
            items: one tuple of positional arguments per call.
            kwargs: keyword arguments of every call (None: none).
            key: None (derived keys), a prefix (``"{key}-{i}"``) or one key per item.
                Others as in :meth:`submit`.

        Returns:
            One future per item, in order.
        """
        _check_options("map", None, pure, allow_other_workers, retries)
        self._check_open()
        if kwargs is None:
            kwargs = {}
        if isinstance(key, str):
            keys: list[str | None] = [f"{key}-{i}" for i in range(len(items))]
        elif key is None:
            keys = [None] * len(items)
        elif is_container(key):
            keys = list(key)
            if len(keys) != len(items):
                raise ValueError(f"map got {len(keys)} keys for {len(items)} items")
            for k in keys:
                if not isinstance(k, str):
                    raise TypeError(f"map: every key must be a str, not {type(k).__name__} {k!r:.80}")
        else:
            raise TypeError(f"map: key must be None, a str prefix or a list of str, not {type(key).__name__}")
        make = self._calls.caller(fn, pure, self._ranks, workers, allow_other_workers, retries).task
        tasks = [make(args, kwargs, k) for args, k in zip(items, keys)]
        futures = new_futures(self, [task[0].key for task in tasks])
        if tasks:
            self._world.send((m.SUBMIT, tasks))
            self.future_table.sent()
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
            key = self._calls.fresh_key(type(value).__name__)
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
        self.future_table.sent()
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
        elif not is_container(workers):
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
        if is_container(futures) and not isinstance(futures, (list, tuple, set, frozenset)):
            futures = list(futures)  # an iterator or a generator: its futures, once
        flat: list[Future] = []
        collect(futures, flat)
        self._check_own(flat, "gather")
        wait_all(flat)
        bad = failed_keys(flat, errors)
        return rebuild(futures, fetch_values(self.future_table, flat, bad), bad)

    def _check_own(self, flat: list[Future], where: str) -> None:
        for fut in flat:
            if fut.client is not self:
                raise ValueError(f"{where}: {fut!r} belongs to another client" if fut.client is not None
                                 else f"{where}: {fut!r} is not a task's future")

    def _futures_arg(self, futures: Any, where: str) -> list[Future]:
        """The futures in a future or a (nested) container of futures; TypeError for anything else."""
        if is_container(futures) and not isinstance(futures, (list, tuple, set, frozenset)):
            futures = list(futures)
        other = _first_non_future(futures)
        if other is not _NONE:
            raise TypeError(f"{where}() takes a future or a list/dict of futures; it got {type(other).__name__} "
                            f"{other!r:.80}")
        flat: list[Future] = []
        collect(futures, flat)
        self._check_own(flat, where)
        return flat

    def cancel(self, futures: Any) -> None:
        """Cancel unfinished tasks (and what depends on them); finished ones are left alone.

        The futures become cancelled once the scheduler answers (``Future.cancel()`` marks
        its future cancelled at once).
        """
        flat = self._futures_arg(futures, "cancel")
        if flat:
            self.future_table.cancel(tuple(f.key for f in flat))

    def who_has(self, futures: Any = None) -> dict[str, list[int]]:
        """Which worker ranks hold each key (all keys, or those of ``futures``)."""
        keys = None
        if futures is not None:
            keys = [f.key for f in self._futures_arg(futures, "who_has")]
        return self._world.who_has(keys)

    def has_what(self) -> dict[int, list[str]]:
        """The keys each worker rank holds."""
        return self._world.has_what()

    @property
    def nworkers(self) -> int:
        """How many live workers the world has (a dead one no longer counts)."""
        return len(self._world.info)

    @property
    def workers(self) -> dict[int, dict[str, Any]]:
        """Worker rank -> ``{"host": name, "cores": n}``."""
        return {r: {"host": i["host"], "cores": i["cores"]} for r, i in sorted(self._world.info.items())}

    @property
    def lost_workers(self) -> dict[int, tuple[str, float]]:
        """Worker rank -> ``(reason, time.time())`` of each worker that died; the others go on."""
        return self._world.lost_workers

    @property
    def recoveries(self) -> list[WorkerLoss]:
        """What each worker's loss cost, in order: a :class:`~hpcdist.runtime.losses.WorkerLoss` per lost
        rank (``.rank .reason .time .running .requeued .recomputed .erred``, counts), as rank 0's log says it."""
        return self._world.recoveries

    @property
    def walltime_warning(self) -> threading.Event:
        """Set once the batch system's walltime warning (SIGUSR1) reached rank 0.

        A driver can check it between rounds of work and stop submitting in time.
        """
        return self._world.walltime_warning

    def running_keys(self) -> set[str]:
        """Keys a worker is running now, as far as rank 0 knows: the first key assigned to each
        worker (workers run their tasks in assignment order); empty on the local backend."""
        return self._world.running_keys()

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
        self.future_table.close()
        if not self._attached:
            self._world.shutdown(code)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # A driver that fails takes the workers down with a non-zero status.
        self._shutdown(0 if exc_type is None else 1)

    def __repr__(self) -> str:
        return f"<hpcdist.Client backend={self.backend!r} workers={self.nworkers}>"


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
    transition log aside (bounded by :data:`hpcdist.runtime.scheduling.transitions.LOG_MAX`); with K live
    futures each is O(K).
    """
    sizes = client.future_table.sizes()
    sizes.update(client._world.table_sizes())
    return sizes


def counters(client: Client) -> dict[str, int]:
    """Rank 0's traffic so far (a diagnostic: tests, ``hpcdist bench``).

    Returns:
        ``bytes_in``/``bytes_out``: payload bytes rank 0 received from / sent to workers (task
        arguments, scatters, gathers; 0 on the local backend); ``steals_sent``: STEAL messages
        the scheduler sent (work stealing, and queued tasks dropped because released).
    """
    return client._world.counters()


def worker_pids(client: Client) -> dict[int, int | None]:
    """Worker rank -> its process id as reported at start-up (thread and local workers report
    the driver's own), None if it reported none."""
    return {rank: info.get("pid") for rank, info in sorted(client._world.info.items())}


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
    "Client", "Future", "as_completed", "wait", "set_current_world",
    "FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED",
]
