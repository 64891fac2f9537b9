"""The scheduler's record of one key, the table of every live key's record, and the walks over
the task graph that only read it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from hpcdist.errors import DependencyMissing
from hpcdist.runtime.scheduling.tables import shrink
from hpcdist.runtime.scheduling.vocabulary import CANCELLED, ERRED, FORGOTTEN, MEMORY, RELEASED, TaskSpec

__all__ = ["NO_RANKS", "SHRINK_EVERY", "NbytesView", "TaskRecord", "TaskTable", "released_closure"]

#: the per-key tables are checked for shrinking after this many keys were forgotten
SHRINK_EVERY = 1024

NO_RANKS: frozenset[int] = frozenset()


class TaskRecord:
    """One key's record (slots: one per live key); read it. The state writes it, but for
    ``processing_on`` and ``expected`` (the :class:`~hpcdist.runtime.scheduling.dispatch.Dispatch`'s), the
    ``dependents`` links (the :class:`TaskTable`'s) and ``killed_on``
    (the :class:`~hpcdist.runtime.scheduling.recovery.Recovery`'s)."""

    __slots__ = ("key", "spec", "state", "runnable", "wanted", "dependents", "waiting_on")
    __slots__ += ("processing_on", "expected", "retries_left", "failed_on", "killed_on", "error", "nbytes")

    def __init__(self, spec: TaskSpec) -> None:
        self.key = spec.key
        self.spec = spec
        self.state = FORGOTTEN
        self.runnable = True  # False for scattered data: nothing can recompute it
        self.wanted = False  # a client Future refers to it
        self.dependents: set[str] = set()
        self.waiting_on: set[str] = set()
        self.processing_on: int | None = None
        self.expected = 0.0  # duration estimate added to its worker's occupancy
        self.retries_left = 0
        self.failed_on: frozenset[int] = NO_RANKS  # replaced, never mutated
        self.killed_on: tuple[int, ...] = ()  # ranks that died running it (the Recovery's)
        self.error: object = None
        self.nbytes: int | None = None

    def __repr__(self) -> str:
        return f"TaskRecord({self.key!r}, {self.state}, on={self.processing_on})"


class NbytesView(Mapping):
    """key -> nbytes over the state's task table, without copying it for every placement."""

    def __init__(self, tasks: dict[str, TaskRecord]) -> None:
        self._tasks = tasks

    def __getitem__(self, key: str) -> int:
        return self._tasks[key].nbytes or 0

    def __iter__(self) -> Iterator[str]:
        return iter(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)


class TaskTable:
    """Key -> record of every live key, and the keys forgotten since they were last taken.

    Only this class adds and removes keys and links records to their dependencies; the state
    changes the rest of the records.

    Attributes:
        records: Key -> record, in the order the keys became known (read it; only this table
            adds or deletes keys).
        nbytes: Key -> nbytes of its data (0 if unknown), a view over ``records``.
    """

    __slots__ = ("records", "nbytes", "_forgotten", "_forgets")

    def __init__(self) -> None:
        self.records: dict[str, TaskRecord] = {}
        self.nbytes = NbytesView(self.records)
        self._forgotten: list[str] = []
        self._forgets = 0  # keys forgotten since the table was last checked for shrinking

    def add(self, spec: TaskSpec) -> TaskRecord:
        """Add a new record (in state forgotten) for ``spec``'s key and return it."""
        ts = self.records[spec.key] = TaskRecord(spec)
        return ts

    def forget(self, key: str) -> None:
        """Remove ``key``'s record."""
        del self.records[key]
        self._forgotten.append(key)
        self._forgets += 1

    def link(self, ts: TaskRecord, cyclic: set[str]) -> tuple[str | None, object]:
        """Link released ``ts`` to its dependencies as their dependent, and say whether it may be scheduled.

        Args:
            ts: A released task with dependencies.
            cyclic: The keys found on a cycle of dependencies (see :func:`released_closure`).

        Returns:
            ``(None, None)`` if no dependency is missing, erred or cancelled; ``(ERRED, error)`` if
            ``ts`` is to err with ``error``; ``(CANCELLED, None)`` if it is to be cancelled.
        """
        key = ts.key
        missing = erred = cancelled = None
        for dep in ts.spec.deps:
            dts = self.records.get(dep)
            if dts is not None:
                dts.dependents.add(key)  # (re)link: the dep may have been forgotten and resubmitted
            if dts is None or dts.state == RELEASED or dep in cyclic:
                missing = missing or dep
            elif dts.state == ERRED:
                erred = erred or dts
            elif dts.state == CANCELLED:
                cancelled = cancelled or dep
        if key in cyclic:
            return ERRED, DependencyMissing(f"task {key!r} depends on itself through a cycle of dependencies")
        if missing is not None:
            return ERRED, DependencyMissing(
                f"task {key!r} depends on {missing!r}, which the scheduler does not have (never"
                " submitted, released, or scattered data that was lost); submit it with the task"
                " or keep a Future to it"
            )
        if erred is not None:
            return ERRED, erred.error
        return (CANCELLED, None) if cancelled is not None else (None, None)

    def unlink(self, ts: TaskRecord) -> list[str]:
        """Unlink ``ts`` from its dependencies; return those still known."""
        records, key = self.records, ts.key
        deps = [dep for dep in ts.spec.deps if dep in records]
        for dep in deps:
            records[dep].dependents.discard(key)
        return deps

    def pop_forgotten(self) -> list[str]:
        """Return the keys forgotten since the last call, in order."""
        out, self._forgotten = self._forgotten, []
        return out

    def shrink_due(self) -> bool:
        """Whether enough keys were forgotten that the per-key tables should be checked for shrinking."""
        return self._forgets >= SHRINK_EVERY

    def shrink(self) -> None:
        """Give back the memory of the table if it fell far below its peak size."""
        self._forgets = 0
        shrink(self.records)

    def unfinished_wanted(self) -> list[str]:
        """Keys a client Future waits for that are not in memory, erred or cancelled yet."""
        final = (MEMORY, ERRED, CANCELLED)
        return [k for k, ts in self.records.items() if ts.wanted and ts.state not in final]

    def forgotten_count(self) -> int:
        """How many forgotten keys were not taken yet (a diagnostic)."""
        return len(self._forgotten)


def released_closure(tasks: Mapping[str, TaskRecord], roots: Iterable[str]) -> tuple[list[str], set[str]]:
    """Return the released tasks among ``roots`` and the released, runnable dependencies they need.

    Returns:
        The keys with dependencies before dependents, and the keys found on a dependency cycle.
    """
    # Iterative post-order DFS through released tasks.
    order: list[str] = []
    done: set[str] = set()
    cyclic: set[str] = set()
    for root in roots:
        ts = tasks.get(root)
        if ts is None or ts.state != RELEASED or root in done:
            continue
        if not ts.spec.deps:
            done.add(root)
            order.append(root)
            continue
        path = [root]
        stack = [iter(ts.spec.deps)]
        on_path = {root}
        while stack:
            for dep in stack[-1]:
                dts = tasks.get(dep)
                if dts is None or dts.state != RELEASED or dep in done or not dts.runnable:
                    continue
                if dep in on_path:
                    cyclic.update(path[path.index(dep) :])
                    continue
                path.append(dep)
                on_path.add(dep)
                stack.append(iter(dts.spec.deps))
                break
            else:
                stack.pop()
                key = path.pop()
                on_path.discard(key)
                done.add(key)
                order.append(key)
    return order, cyclic
