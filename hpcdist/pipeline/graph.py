"""From task definitions to concrete tasks: expansion, dependencies, states. Pure logic, no I/O.

A task without ``map`` is one concrete task named like the definition (``total``). A mapped
task becomes one concrete task per item, ``counts[0]``, ``counts[1]``, ...: over a literal
list at once, over another mapped task item by item (``b[i]`` needs only ``a[i]``), over a
plain task once that task is done and its output's length is known. :class:`Plan` tracks
every concrete task's state and hands out the ready ones; the runner does the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from hpcdist.pipeline.model import Pipeline

__all__ = ["Item", "Plan", "TERMINAL", "OK_STATES"]

#: states a concrete task ends in
TERMINAL = ("done", "cached", "failed", "skipped", "not_run")
#: states whose output exists
OK_STATES = ("done", "cached")


@dataclass
class Item:
    """One concrete task.

    Attributes:
        tid: ``name`` or ``name[i]``.
        name: the task definition's name.
        index: the item number of a mapped task, else None.
        deps: tids that must be in an OK state first.
        source: for an item of a map over a plain task: that task's tid (the item is its
            output's element ``index``); over a mapped task: the matching item's tid.
        value: for an item of a map over a literal list: the item itself.
        key: the cache key (see :mod:`hpcdist.pipeline.keys`).
        state: waiting, ready, running, done, cached, failed, skipped or not_run.
    """

    tid: str
    name: str
    index: int | None = None
    deps: tuple[str, ...] = ()
    source: str | None = None
    value: Any = None
    key: str = ""
    state: str = "waiting"
    dependents: list[str] = field(default_factory=list)


KeyFn = Callable[["Plan", Item], str]


class Plan:
    """Concrete tasks of a pipeline and their states.

    Args:
        pipeline: the validated pipeline.
        key_fn: computes an item's cache key once its dependencies have keys.
    """

    def __init__(self, pipeline: Pipeline, key_fn: KeyFn) -> None:
        self.pipeline = pipeline
        self.key_fn = key_fn
        self.items: dict[str, Item] = {}
        self.groups: dict[str, list[str] | None] = {n: None for n in pipeline.tasks}
        self.lengths: dict[str, int] = {}  # tid of a plain task -> length of its (list) output
        self.stopped = False
        self.errors: dict[str, str] = {}  # tid -> why it failed, for failures found here
        self._counts: dict[str, int] = {}
        self._missing: dict[str, int] = {}  # tid -> dependencies not yet OK
        self._ready: list[str] = []  # became ready, not handed out yet
        self.expand()

    # ---- queries ------------------------------------------------------------------------

    def group(self, name: str) -> list[str] | None:
        """The tids of definition ``name`` (None until it is expanded)."""
        return self.groups[name]

    def is_mapped(self, name: str) -> bool:
        return self.pipeline.tasks[name].map is not None

    def ref_keys(self, name: str) -> Any:
        """What a ``{ref: name}`` stands for in a cache key: the key, or the list of item keys."""
        tids = self.groups[name] or []
        keys = [self.items[t].key for t in tids]
        return keys if self.is_mapped(name) else keys[0]

    def counts(self) -> dict[str, int]:
        """Concrete tasks per state, plus ``unexpanded`` definitions."""
        out = {k: v for k, v in self._counts.items() if v}
        out["unexpanded"] = sum(1 for g in self.groups.values() if g is None)
        return out

    def pending(self) -> int:
        """Concrete tasks not yet terminal."""
        return sum(v for k, v in self._counts.items() if k not in TERMINAL)

    def finished(self) -> bool:
        """True when every definition is expanded and every concrete task is terminal."""
        return all(g is not None for g in self.groups.values()) and self.pending() == 0

    def ready(self) -> list[Item]:
        """Items that became ready (all dependencies OK) since the last call; none once stopped."""
        if self.stopped:
            return []
        out = [self.items[t] for t in self._ready if self.items[t].state == "ready"]
        self._ready = []
        return out

    def mark(self, tid: str, state: str) -> None:
        """Set ``tid``'s state (no side effects on other tasks; see :meth:`set_state`)."""
        item = self.items[tid]
        if item.state == state:
            return
        self._counts[item.state] = self._counts.get(item.state, 0) - 1
        self._counts[state] = self._counts.get(state, 0) + 1
        was_ok = item.state in OK_STATES
        item.state = state
        if state in OK_STATES and not was_ok:
            for d in item.dependents:
                self._missing[d] -= 1
                if self._missing[d] == 0 and self.items[d].state == "waiting":
                    self.mark(d, "ready")
                    self._ready.append(d)

    def _add(self, item: Item) -> None:
        self.items[item.tid] = item
        state, item.state = item.state, "_new"
        self._counts["_new"] = self._counts.get("_new", 0) + 1
        self._missing[item.tid] = sum(1 for d in item.deps if self.items[d].state not in OK_STATES)
        self.mark(item.tid, state)
        if state == "waiting" and self._missing[item.tid] == 0:
            self.mark(item.tid, "ready")
            self._ready.append(item.tid)

    # ---- events -------------------------------------------------------------------------

    def set_state(self, tid: str, state: str) -> None:
        """Record ``state`` for ``tid``; a failure skips everything downstream."""
        self.mark(tid, state)
        if state == "failed":
            self._skip_downstream(tid)
            if self.pipeline.on_error == "stop":
                self.stopped = True
        self.expand()

    def done(self, tid: str, length: int | None = None, cached: bool = False) -> None:
        """``tid`` finished (or was found in the cache); ``length`` of its output if a list."""
        if length is not None:
            self.lengths[tid] = length
        self.set_state(tid, "cached" if cached else "done")

    def stop(self) -> None:
        """Hand out nothing new (walltime, interrupt, on_error: stop)."""
        self.stopped = True

    def close(self) -> None:
        """Mark everything not terminal as ``not_run`` (the run is over)."""
        for it in self.items.values():
            if it.state not in TERMINAL:
                self.mark(it.tid, "not_run")

    def _skip_downstream(self, tid: str) -> None:
        todo = list(self.items[tid].dependents)
        while todo:
            it = self.items[todo.pop()]
            if it.state in ("waiting", "ready"):
                self.mark(it.tid, "skipped")
                todo.extend(it.dependents)

    # ---- expansion ------------------------------------------------------------------------

    def expand(self) -> None:
        """Expand every definition whose size and dependencies are known now."""
        changed = True
        while changed:
            changed = False
            for name, tids in self.groups.items():
                if tids is None and self._expand(name):
                    changed = True

    def _expand(self, name: str) -> bool:
        t = self.pipeline.tasks[name]
        deps: list[str] = []
        whole = set(t.refs) | set(t.after)  # named besides map: every item is needed
        for d in t.deps:
            if d == t.map and self.is_mapped(d) and d not in whole:
                continue  # item-wise: b[i] needs only a[i]
            g = self.groups[d]
            if g is None:
                return False
            deps.extend(g)
        # a plain dependency that failed or was skipped makes the whole group skipped
        blocked = any(self.items[d].state in ("failed", "skipped", "not_run") for d in deps)
        specs: list[tuple[int | None, str | None, Any]]
        if t.map is None:
            specs = [(None, None, None)]
        elif isinstance(t.map, tuple):
            specs = [(i, None, v) for i, v in enumerate(t.map)]
        elif self.is_mapped(t.map):
            src = self.groups[t.map]
            if src is None:
                return False
            specs = [(i, s, None) for i, s in enumerate(src)]
        else:
            src_tid = self.groups[t.map][0]  # type: ignore[index]
            src_item = self.items[src_tid]
            if src_item.state in ("failed", "skipped", "not_run"):
                blocked = True
                specs = []
            elif src_tid not in self.lengths:
                if src_item.state not in OK_STATES:
                    return False
                tid = f"{name}[]"  # done, but its output is not a list: the map itself fails
                self._add(Item(tid=tid, name=name, deps=(src_tid,), state="failed"))
                self.errors[tid] = f"map: {t.map}: the output of task {t.map!r} is not a list or tuple"
                self.groups[name] = [tid]
                if self.pipeline.on_error == "stop":
                    self.stopped = True
                return True
            else:
                specs = [(i, src_tid, None) for i in range(self.lengths[src_tid])]
        tids = []
        for index, source, value in specs:
            tid = name if index is None else f"{name}[{index}]"
            item_deps = tuple(dict.fromkeys(deps + ([source] if source else [])))
            item = Item(tid=tid, name=name, index=index, deps=item_deps, source=source, value=value)
            for d in item_deps:
                self.items[d].dependents.append(tid)
            item.key = self.key_fn(self, item)
            if blocked or (source and self.items[source].state in ("failed", "skipped", "not_run")):
                item.state = "skipped"
            self._add(item)
            tids.append(tid)
        self.groups[name] = tids
        if blocked and not tids:
            # an empty skipped group still has to block what depends on it
            tid = f"{name}[]"
            self._add(Item(tid=tid, name=name, deps=tuple(deps), state="skipped", key=""))
            self.groups[name] = [tid]
        return True
