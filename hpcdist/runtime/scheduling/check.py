"""Invariants of the scheduler state, checked by ``SchedulerState.validate()`` (tests run it after
every event). Reads the state's internals; changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpcdist.runtime.scheduling.vocabulary import (
    ALLOWED_TRANSITIONS,
    FORGOTTEN,
    MEMORY,
    PENDING,
    PROCESSING,
    READY,
    RELEASED,
    RETAINING,
    WAITING,
)

if TYPE_CHECKING:
    from hpcdist.runtime.scheduling.state import SchedulerState


def check_invariants(self: SchedulerState) -> None:
    """Check every invariant of the state.

    Raises:
        AssertionError: Naming the broken invariant and the keys or ranks involved.
    """
    tasks = self._tasks
    ranks = set(self._host)
    assert self._ranks == sorted(ranks), f"_ranks {self._ranks} != sorted workers {sorted(ranks)}"
    assert not self._dirty and not self._dirty_order, f"keys left to settle: {self._dirty_order}"
    for name in ("_processing", "_has_what", "_occupancy", "_incoming", "_incoming_load"):
        assert (
            set(getattr(self, name)) == ranks
        ), f"{name} covers ranks {sorted(getattr(self, name))}, workers are {sorted(ranks)}"
    placed: dict[str, int] = {}
    for rank, queue in self._processing.items():
        for key in queue:
            assert key not in placed, f"key {key!r} is processing on ranks {placed.get(key)} and {rank}"
            placed[key] = rank
            ts = tasks.get(key)
            got = (ts.state, ts.processing_on) if ts else None
            assert got == (PROCESSING, rank), f"key {key!r} is queued on rank {rank} but is {got}"
        total = sum(tasks[k].expected for k in queue)
        drift = abs(self._occupancy[rank] - total)
        assert drift <= 1e-6 * max(
            1.0, total
        ), f"rank {rank}: occupancy {self._occupancy[rank]} != {total}"
    for key, ts in tasks.items():
        _check_task(self, key, ts, placed)
    for key, holders in self._who_has.items():
        assert holders, f"key {key!r} has an empty who_has entry"
        for rank in holders:
            assert (
                rank in ranks and key in self._has_what[rank]
            ), f"who_has[{key!r}] has {rank}, has_what does not agree"
    for rank, keys in self._has_what.items():
        for key in keys:
            assert rank in self._who_has.get(
                key, ()
            ), f"has_what[{rank}] has {key!r}, who_has does not agree"
    for key, (victim, thief) in self._steals.items():
        assert (
            tasks[key].processing_on == victim
        ), f"steal of {key!r} from rank {victim}, but it is not queued there"
        assert (
            thief is None or key in self._incoming[thief]
        ), f"steal of {key!r} for rank {thief} not in incoming"
    for rank, keys in self._incoming.items():
        for key in keys:
            assert (
                self._steals.get(key, (None, None))[1] == rank
            ), f"rank {rank} expects {key!r}, no steal for it"
        total = sum(tasks[k].expected for k in keys)
        drift = abs(self._incoming_load[rank] - total)
        assert drift <= 1e-6 * max(
            1.0, total
        ), f"rank {rank}: incoming load {self._incoming_load[rank]} != {total}"
    for t, key, a, b, _ in self.log:
        assert (
            a,
            b,
        ) in ALLOWED_TRANSITIONS, f"log has illegal transition of {key!r} at t={t}: {a} -> {b}"

def _check_task(self: SchedulerState, key: str, ts: Any, placed: dict[str, int]) -> None:
    tasks = self._tasks
    where = f"key {key!r} ({ts.state})"
    assert ts.key == key and ts.state not in (FORGOTTEN, READY), f"{where}: bad state outside handle()"
    if ts.state == PROCESSING:
        assert placed.get(key) == ts.processing_on is not None, f"{where}: not in its worker's queue"
    else:
        assert (
            ts.processing_on is None and key not in self._steals
        ), f"{where}: still assigned to a worker"
    if ts.state == MEMORY:
        assert self._who_has.get(key) and ts.nbytes is not None, f"{where}: no holder or no nbytes"
    else:
        assert key not in self._who_has, f"{where}: has holders {sorted(self._who_has[key])}"
    if ts.state == WAITING:
        missing = {d for d in ts.spec.deps if tasks[d].state != MEMORY}
        assert ts.waiting_on == missing and missing, f"{where}: waiting_on {ts.waiting_on} != {missing}"
    else:
        assert not ts.waiting_on, f"{where}: waiting_on {ts.waiting_on}"
    if ts.state in PENDING:
        for dep in ts.spec.deps:
            assert (
                dep in tasks and key in tasks[dep].dependents
            ), f"{where}: dependency {dep!r} forgotten or unlinked"
            assert (
                ts.state != PROCESSING or tasks[dep].state == MEMORY
            ), f"{where}: dependency {dep!r} not in memory"
    for dkey in ts.dependents:
        assert dkey in tasks and key in tasks[dkey].spec.deps, f"{where}: dangling dependent {dkey!r}"
    states = {tasks[d].state for d in ts.dependents}
    if ts.state == RELEASED:
        assert ts.runnable and not ts.wanted and states & RETAINING, f"{where}: kept without a reason"
    elif not ts.wanted and ts.state in PENDING | {MEMORY}:
        assert states & PENDING, f"{where}: nobody needs it but it was not released"
    elif not ts.wanted:
        assert states & RETAINING, f"{where}: nobody needs it but it was not forgotten"
