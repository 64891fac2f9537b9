"""Invariants of the scheduler state, checked by ``SchedulerState.validate()`` (tests run it after
every event). Reads the state through its public read-only accessors; changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from hpcdist.runtime.scheduling.vocabulary import (
    ALLOWED_TRANSITIONS,
    ERRED,
    FORGOTTEN,
    MEMORY,
    PENDING,
    PROCESSING,
    READY,
    RELEASED,
    RETAINING,
    WAITING,
)

from hpcdist.runtime.scheduling.tasks import TaskRecord
from hpcdist.runtime.scheduling.workers import WorkerTable


class CheckedState(Protocol):
    """The read-only accessors of the scheduler state that the checks use."""

    log: Iterable[tuple[float, str, str, str, Any]]
    allowed_failures: int

    @property
    def worker_table(self) -> WorkerTable: ...

    def settling(self) -> list[str]: ...

    def task(self, key: str) -> TaskRecord | None: ...

    def tasks(self) -> Iterable[TaskRecord]: ...


def check_invariants(state: CheckedState) -> None:
    """Check every invariant of ``state`` (through its public read-only accessors).

    Raises:
        AssertionError: Naming the broken invariant and the keys or ranks involved.
    """
    assert not state.settling(), "keys left to settle"
    workers = state.worker_table
    workers.check()
    placed: dict[str, int] = {}
    for rec in workers.records():
        rank = rec.rank
        for key in rec.processing:
            assert key not in placed, f"key {key!r} is processing on ranks {placed.get(key)} and {rank}"
            placed[key] = rank
            ts = state.task(key)
            got = (ts.state, ts.processing_on) if ts else None
            assert got == (PROCESSING, rank), f"key {key!r} is queued on rank {rank} but is {got}"
        total = sum(state.task(k).expected for k in rec.processing)
        drift = abs(rec.occupancy - total)
        assert drift <= 1e-6 * max(1.0, total), f"rank {rank}: occupancy {rec.occupancy} != {total}"
        for key in rec.incoming:
            expected = state.task(key).expected
            assert workers.steal_load(key) == expected, f"steal of {key!r}: load {workers.steal_load(key)} != {expected}"
    for ts in state.tasks():
        _check_task(state, ts, placed)
    for key, (victim, thief) in workers.steals().items():
        ts = state.task(key)
        assert ts is not None and ts.processing_on == victim, f"steal of {key!r} from rank {victim}, but it is not queued there"
    for t, key, a, b, _ in state.log:
        assert (a, b) in ALLOWED_TRANSITIONS, f"log has illegal transition of {key!r} at t={t}: {a} -> {b}"


def _check_task(state: CheckedState, ts: TaskRecord, placed: dict[str, int]) -> None:
    key = ts.key
    task = state.task
    holders = state.worker_table.holders
    where = f"key {key!r} ({ts.state})"
    assert task(key) is ts and ts.state not in (FORGOTTEN, READY), f"{where}: bad state outside handle()"
    assert (
        ts.state == ERRED or len(ts.killed_on) < state.allowed_failures
    ), f"{where}: killed workers {ts.killed_on}, allowed {state.allowed_failures}, but it did not err"
    if ts.state == PROCESSING:
        assert placed.get(key) == ts.processing_on is not None, f"{where}: not in its worker's queue"
    else:
        assert (
            ts.processing_on is None and not state.worker_table.is_stealing(key)
        ), f"{where}: still assigned to a worker"
    if ts.state == MEMORY:
        assert holders.get(key) and ts.nbytes is not None, f"{where}: no holder or no nbytes"
    else:
        assert key not in holders, f"{where}: has holders {sorted(holders[key])}"
    if ts.state == WAITING:
        missing = {d for d in ts.spec.deps if task(d).state != MEMORY}
        assert ts.waiting_on == missing and missing, f"{where}: waiting_on {ts.waiting_on} != {missing}"
    else:
        assert not ts.waiting_on, f"{where}: waiting_on {ts.waiting_on}"
    if ts.state in PENDING:
        for dep in ts.spec.deps:
            assert (
                task(dep) is not None and key in task(dep).dependents
            ), f"{where}: dependency {dep!r} forgotten or unlinked"
            assert (
                ts.state != PROCESSING or task(dep).state == MEMORY
            ), f"{where}: dependency {dep!r} not in memory"
    for dkey in ts.dependents:
        assert task(dkey) is not None and key in task(dkey).spec.deps, f"{where}: dangling dependent {dkey!r}"
    states = {task(d).state for d in ts.dependents}
    if ts.state == RELEASED:
        assert ts.runnable and not ts.wanted and states & RETAINING, f"{where}: kept without a reason"
    elif not ts.wanted and ts.state in PENDING | {MEMORY}:
        assert states & PENDING, f"{where}: nobody needs it but it was not released"
    elif not ts.wanted:
        assert states & RETAINING, f"{where}: nobody needs it but it was not forgotten"
