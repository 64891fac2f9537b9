"""Turning a client's calls into tasks: pickled functions (once per function), keys, specs.

A task travels as ``(TaskSpec, fn_id, fn_bytes, data, buffers)``: the function's pickle and
its id, the pickled arguments (futures inside them become references the worker resolves)
and the :class:`~hpcdist.runtime.scheduling.vocabulary.TaskSpec` the scheduler places.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import pickle
import uuid
import weakref
from typing import Any, Callable

from hpcdist.errors import HpcdistError
from hpcdist.runtime import messages as m
from hpcdist.runtime import serialize
from hpcdist.runtime.futures import Future
from hpcdist.runtime.scheduling.vocabulary import TaskSpec


class Calls:
    """One client's task building: its functions' pickles, cached, and its fresh keys.

    Args:
        client: the client whose futures may appear in the arguments.

    Attributes:
        token: unique to this client; fresh keys are ``{name}-{token}-{counter}``.
        counter: the counter of fresh keys (uuid4 per task cost ~5 us).
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.token = uuid.uuid4().hex[:12]
        self.counter = itertools.count()
        self._fn_cache: dict[int, tuple[Any, str, bytes, str, Any]] = {}

    def fresh_key(self, name: str) -> str:
        """A key no other call of this client has."""
        return f"{name}-{self.token}-{next(self.counter)}"

    def caller(self, fn: Callable, pure: bool, ranks_of: Callable[[Any], frozenset[int] | None], workers: Any,
               allow_other_workers: bool, retries: int) -> Caller:
        """What every task of one submit/map call shares, worked out once (``fn`` checked first,
        then ``ranks_of(workers)``)."""
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
        return Caller(self, fn_id, fn_bytes, name, hasher if pure else None, ranks_of(workers),
                      allow_other_workers, retries)


class Caller:
    """Builds the tasks of one submit/map call: per-call work once, per-item work per item."""

    def __init__(self, calls: Calls, fn_id: str, fn_bytes: bytes, name: str, hasher: Any,
                 ranks: frozenset[int] | None, allow_other_workers: bool, retries: int) -> None:
        self.calls = calls
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
                calls = self.calls
                key = f"{self.name}-{calls.token}-{next(calls.counter)}"
        # positional: half the cost of keywords, and this runs once per task
        spec = TaskSpec(key, deps, self.name, self.ranks, self.allow_other_workers, self.retries)
        return spec, self.fn_id, self.fn_bytes, data, buffers

    def _dumps_with_futures(self, args: tuple, kwargs: dict) -> tuple[bytes, list, tuple]:
        client = self.calls.client
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


def _same(obj: Any) -> Any:
    return obj
