"""Placement and stealing inside the scheduler state: which worker a ready task goes to, and
which queued tasks move to an idle worker. A mixin of :class:`~hpcdist.runtime.state.SchedulerState`
(it works on the state's own tables); the decisions themselves are the pure functions of
:mod:`hpcdist.runtime.policy`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from hpcdist.errors import WorkerLost as WorkerLostError
from hpcdist.runtime import policy
from hpcdist.runtime.events import PROCESSING

if TYPE_CHECKING:
    from hpcdist.runtime.state import _Task


class NbytesView(Mapping):
    """key -> nbytes over the state's task table, without copying it for every placement."""

    def __init__(self, tasks: dict[str, _Task]) -> None:
        self._tasks = tasks

    def __getitem__(self, key: str) -> int:
        return self._tasks[key].nbytes or 0

    def __iter__(self) -> Iterator[str]:
        return iter(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)


class PlacementMixin:
    """Placing ready tasks and balancing queues (see :mod:`hpcdist.runtime.policy`)."""

    def _candidates(self, ts: _Task) -> frozenset[int]:
        return policy.valid_workers(self._host, ts.spec.workers, ts.spec.allow_other_workers)

    def _place(self, ts: _Task) -> None:
        """Put a ready task on a worker, or err it if no worker may run it."""
        if not self._host:
            self._err(ts, WorkerLostError(f"task {ts.key!r} cannot run: every worker was lost"))
            return
        cands = self._candidates(ts)
        if not cands:
            self._err(ts, policy.restriction_error(ts.key, ts.spec.workers or (), self._host))
            return
        if ts.failed_on:  # a retry: prefer a free worker where it has not failed yet
            others = cands - ts.failed_on
            if any(not self._processing[r] and not self._incoming[r] for r in others):
                cands = others
        occupancy = {r: self.occupancy(r) for r in cands}
        rank = policy.decide_worker(ts.spec.deps, cands, self._who_has, self._nbytes, occupancy, self._host)
        self._assign(ts, rank)

    def _assign(self, ts: _Task, rank: int) -> None:
        self._transition(ts, PROCESSING)
        ts.processing_on = rank
        ts.expected = self.expected_duration(ts.spec.fn_name)
        self._processing[rank][ts.key] = None
        self._occupancy[rank] += ts.expected
        self._rebalance = True
        host = self._host[rank]
        where = {}
        for dep in ts.spec.deps:
            holders = self._who_has.get(dep, set())
            where[dep] = sorted(holders, key=lambda h: (h != rank, self._host.get(h) != host, h))
        if ts.key in self._frees.get(rank, ()):
            self._frees[rank].discard(ts.key)
        self._out.append(("compute", rank, ts.key, where))

    def _leave_worker(self, ts: _Task, drop: bool) -> None:
        """Take a processing task off its worker; ``drop`` asks the worker to discard it."""
        rank = ts.processing_on
        if rank is None:
            return
        if ts.key in self._steals:
            self._end_steal(ts.key)
        del self._processing[rank][ts.key]
        if self._processing[rank]:
            self._occupancy[rank] -= ts.expected
        else:
            self._occupancy[rank] = 0.0  # no float drift once the queue is empty
            self._rebalance = True
        ts.processing_on = None
        ts.expected = 0.0
        if drop:
            self._out.append(("steal", rank, ts.key))

    def _end_steal(self, key: str) -> None:
        _, thief = self._steals.pop(key)
        if thief is not None:
            self._incoming[thief].discard(key)

    def _balance(self) -> None:
        idle = [r for r in self._host if not self._processing[r] and not self._incoming[r]]
        if not idle:
            return
        queues = {
            r: [k for k in q if k not in self._steals] for r, q in self._processing.items() if len(q) >= 2
        }
        if not queues:
            return

        def allowed_of(key: str) -> frozenset[int] | None:
            spec = self._tasks[key].spec
            if spec.workers is None:
                return None
            if spec.allow_other_workers and self._tasks[key].processing_on not in spec.workers:
                return None  # already running outside its preference: anywhere will do
            return spec.workers

        plan = policy.balance_plan(
            idle,
            queues,
            lambda k: self._tasks[k].expected,
            lambda k: self._tasks[k].spec.deps,
            allowed_of,
            self._who_has,
            self._nbytes,
            self._host,
        )
        for thief, victim, key in plan:
            self._steals[key] = (victim, thief)
            self._incoming[thief].add(key)
            self._out.append(("steal", victim, key))
