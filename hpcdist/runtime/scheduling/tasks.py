"""The scheduler's record of one key, and the walks over the task graph that only read it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from hpcdist.runtime.scheduling.vocabulary import FORGOTTEN, RELEASED, TaskSpec

__all__ = ["NO_RANKS", "NbytesView", "TaskRecord", "released_closure"]

NO_RANKS: frozenset[int] = frozenset()


class TaskRecord:
    """One key's record (slots: the scheduler holds one per live key); read it, only the state writes it."""

    __slots__ = ("key", "spec", "state", "runnable", "wanted", "dependents", "waiting_on")
    __slots__ += ("processing_on", "expected", "retries_left", "failed_on", "error", "nbytes")

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
