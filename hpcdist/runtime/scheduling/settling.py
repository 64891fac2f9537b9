"""Which keys may have lost their last reason to be kept, and what becomes of them.

A transition can make a key's data, or its whole record, unneeded: the state marks such keys in
a :class:`SettleQueue` and, at the end of the event, settles them in the order they were first
marked; :func:`fate` says what each becomes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from hpcdist.runtime.scheduling.tables import shrink
from hpcdist.runtime.scheduling.tasks import TaskRecord
from hpcdist.runtime.scheduling.vocabulary import CANCELLED, ERRED, FORGOTTEN, MEMORY, PENDING, RELEASED, RETAINING

__all__ = ["SettleQueue", "fate"]


class SettleQueue:
    """Marked keys: first in, first out, without duplicates.

    A set for membership and a list read from an index (popping a dict's first key is quadratic).

    Attributes:
        order: The marked keys in the order they were marked (read it; :meth:`mark` writes it).
    """

    __slots__ = ("order", "_marked")

    def __init__(self) -> None:
        self.order: list[str] = []
        self._marked: set[str] = set()

    def mark(self, key: str) -> None:
        """Mark ``key`` (a key marked again while it waits keeps its place)."""
        if key not in self._marked:
            self._marked.add(key)
            self.order.append(key)

    def mark_all(self, keys: Iterable[str]) -> None:
        """Mark each of ``keys``, in order."""
        for key in keys:
            self.mark(key)

    def mark_transition(self, ts: TaskRecord) -> None:
        """``ts`` moved to a state other than forgotten: whether it and its dependencies are still
        needed may have changed."""
        marked, order = self._marked, self.order
        key = ts.key
        # wanted keys are never settled, and a key stops being wanted only on a Release, which marks it
        if not ts.wanted and key not in marked:
            marked.add(key)
            order.append(key)
        for dep in ts.spec.deps:
            if dep not in marked:
                marked.add(dep)
                order.append(dep)

    def drain(self) -> Iterator[str]:
        """Yield the marked keys in order, unmarking each; keys marked meanwhile come after it."""
        order, marked = self.order, self._marked
        i = 0
        while i < len(order):
            key = order[i]
            i += 1
            marked.discard(key)
            yield key
        order.clear()

    def keys(self) -> list[str]:
        """The marked keys."""
        return list(self.order) or sorted(self._marked)

    def __len__(self) -> int:
        return len(self._marked) + len(self.order)

    def shrink(self) -> None:
        """Give back the memory of a table that fell far below its peak size."""
        shrink(self._marked)


def fate(ts: TaskRecord, tasks: Mapping[str, TaskRecord]) -> str | None:
    """Return what unwanted ``ts`` becomes: None (kept as it is), RELEASED or FORGOTTEN.

    A key pending dependents need is kept; a runnable key whose data is no longer needed is
    released while a live dependent may need it recomputed; a key nobody refers to is forgotten.
    """
    state = ts.state
    pending = retaining = False
    for dkey in ts.dependents:
        dstate = tasks[dkey].state
        if dstate in PENDING:
            pending = retaining = True
            break
        if dstate in RETAINING:
            retaining = True
    if pending and (state in PENDING or state == MEMORY):
        return None
    keep = ts.runnable and retaining
    if state == RELEASED and keep:
        return None
    if retaining and (state == ERRED or state == CANCELLED):
        return None
    return RELEASED if keep else FORGOTTEN
