"""The client's table of live futures: how many futures each key has, and its releases.

A :class:`FutureTable` belongs to one :class:`~hpcdist.runtime.client.Client`. It counts the
live futures of every key, releases a key once its last future is gone (through a
:class:`Releases` doorbell handed to the world), holds the condition all the client's futures
share, and runs their done callbacks on a thread of its own. The futures themselves (their
states and values) are :mod:`hpcdist.runtime.futures`' business; this table only keeps weak
references to them.

A future dies in any thread at any allocation (the garbage collector), also while this
very thread holds the table's lock, so :meth:`FutureTable.unregister` never waits for the
lock: it queues the key and counts it only if the lock is free; otherwise the holder counts
it before it lets go (:meth:`FutureTable._unlock`).
"""

from __future__ import annotations

import collections
import itertools
import queue
import sys
import threading
import weakref
from typing import Any, Callable, Iterable, Sequence

from hpcdist.runtime import messages as m
from hpcdist.runtime import serialize
from hpcdist.runtime.scheduling import tables


class Releases:
    """Keys whose last future was dropped, until the scheduler takes them: a doorbell.

    When a batch opens, its :meth:`take` goes to the world, which rings it once it has
    handled every message sent before the batch opened. See :meth:`FutureTable.sent` for
    why a release can never undo a newer submit. Its table's lock guards it.
    """

    __slots__ = ("table", "gen", "keys", "open")

    def __init__(self, table: FutureTable, gen: int) -> None:
        self.table = table
        self.gen = gen
        self.keys: list[str] = []
        self.open = True

    def take(self) -> list[str]:
        """The keys released so far that have no live future again (scheduler thread);
        later releases go to a new batch."""
        return self.table.take_released(self)

    def __len__(self) -> int:
        return len(self.keys)


class FutureTable:
    """Live futures per key, their shared condition and callback thread, and releases.

    Args:
        world: the world the client talks to (``doorbell``, ``drive``, ``send``, ``call``).

    Attributes:
        world: that world.
        condition: the condition every future of the client shares (over :attr:`rlock`).
        rlock: the condition's lock (``with table.rlock`` skips a Python frame).
        closed: True once the client closed: dropped futures release nothing any more.
    """

    def __init__(self, world: Any) -> None:
        self.world = world
        self.rlock = threading.RLock()
        self.condition = threading.Condition(self.rlock)
        self.closed = False
        # _lock guards _futures and the release batch; unregister never blocks on it
        self._lock = threading.Lock()
        self._futures: dict[str, list] = {}  # key -> [number of live futures, weakref, weakref ...]
        self._dropped: collections.deque[str] = collections.deque()  # keys of dropped futures, not yet counted
        self._batch: Releases | None = None
        self._gens = itertools.count(1)
        self._gen = 0  # changes after every submit: see sent()
        self._drops = 0  # keys released since _futures was checked for shrinking
        self._callbacks: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._run_callbacks, name="hpcdist-callbacks", daemon=True).start()

    # ---- counting ------------------------------------------------------------------------------

    def register(self, futures: Iterable[Any]) -> None:
        """Count new futures (each has a ``key``)."""
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

    def unregister(self, key: str) -> None:
        """A future of ``key`` died (any thread, never blocks)."""
        if sys is None or self.closed:  # interpreter shutdown or client closed
            return
        self._dropped.append(key)
        if self._lock.acquire(False):
            self._unlock()

    def live(self, key: str) -> list[Any]:
        """The live futures of ``key``."""
        self._lock.acquire()
        try:
            entry = self._futures.get(key)
            if entry is None:
                return []
            refs = entry[1:]
        finally:
            self._unlock()
        return [f for f in (r() for r in refs) if f is not None]

    def take_released(self, batch: Releases) -> list[str]:
        """Close ``batch`` and return its keys that have no live future (see :meth:`Releases.take`)."""
        self._lock.acquire()
        try:
            batch.open = False
            keys, batch.keys = batch.keys, []
            live = self._futures
            return [k for k in keys if k not in live]
        finally:
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
        released = []
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
            released.append(key)
        if released:
            self._release(released)
            self._drops += len(released)
        if self._drops >= 1024:
            self._drops = 0
            tables.shrink(self._futures)

    # ---- releasing ---------------------------------------------------------------------------

    def _release(self, keys: list[str]) -> None:
        """Tell the scheduler that no future needs ``keys`` any more (``_lock`` held).

        No message is sent: the scheduler rings doorbells at the end of its rounds, off the
        path of the next submit, where a message of its own cost every submit-then-drop
        round trip about 25 µs. The doorbell must not be rung inside the world's
        ``doorbell`` (its :meth:`Releases.take` needs ``_lock``).
        """
        batch = self._batch
        if batch is None or batch.gen != self._gen or not batch.open:
            batch = self._batch = Releases(self, self._gen)
            self.world.doorbell(batch.take)
        batch.keys.extend(keys)

    def sent(self) -> None:
        """A submit (or scatter) has been sent: later releases go to a new batch.

        Ordering: a batch takes keys only until the next submit has been sent (the
        generation changes right after every send), and the world rings its doorbell only
        after every message sent before the batch opened has been handled. So a release
        never comes before the submit it follows. A key submitted again after its release
        has a live future again when the doorbell rings, and :meth:`Releases.take` leaves
        it out: a release never undoes a newer submit either.
        """
        self._gen = next(self._gens)

    def close(self) -> None:
        """The client closed: dropped futures release nothing any more."""
        self.closed = True

    # ---- the world, for the futures ----------------------------------------------------------

    def drive(self, done: Callable[[], bool], timeout: float | None) -> bool:
        """Run the scheduler's loop in this thread until ``done()`` (see ``World.drive``)."""
        return self.world.drive(done, timeout)

    def gather(self, keys: Sequence[str]) -> dict[str, Any]:
        """Bring the values of finished keys from their workers to rank 0."""
        raw = self.world.call((m.GATHER, list(keys)))
        return {k: serialize.load_result(k, data, buffers) for k, (data, buffers) in raw.items()}

    def cancel(self, keys: tuple[str, ...]) -> None:
        """Have the scheduler cancel ``keys``."""
        self.world.send((m.CANCEL, keys))

    # ---- callbacks ---------------------------------------------------------------------------

    def call_later(self, calls: list[Callable[[], Any]]) -> None:
        """Make ``calls`` on the callback thread, in order (a done callback may block)."""
        put = self._callbacks.put
        for call in calls:
            put(call)

    def _run_callbacks(self) -> None:
        while True:
            call = self._callbacks.get()
            call()
            del call

    def sizes(self) -> dict[str, int]:
        """Entries of the table's per-key tables, prefixed ``client.`` (a diagnostic)."""
        self._lock.acquire()
        try:
            batch = self._batch
            return {"client.futures": len(self._futures), "client.dropped": len(self._dropped),
                    "client.releasing": len(batch) if batch is not None else 0}
        finally:
            self._unlock()
