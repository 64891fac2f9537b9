"""Placement and stealing inside the scheduler state: which worker a ready task goes to, which
queued tasks move to an idle worker, what a lost worker takes with it, and where data lives
(replicas and ``free`` instructions). A mixin of :class:`~hpcdist.runtime.scheduling.state.SchedulerState`
(it works on the state's own tables); the decisions themselves are the pure functions of
:mod:`hpcdist.runtime.scheduling.policy`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from hpcdist.errors import WorkerLost
from hpcdist.runtime.scheduling import policy
from hpcdist.runtime.scheduling.vocabulary import (
    PROCESSING, READY, RELEASED, WAITING, Compute, Free, RankLost, Steal, StealReply,
)

if TYPE_CHECKING:
    from hpcdist.runtime.scheduling.state import _Task


_new = tuple.__new__


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
    """Placing ready tasks and balancing queues (see :mod:`hpcdist.runtime.scheduling.policy`)."""

    def _on_steal_reply(self, ev: StealReply) -> None:
        if ev.ok and self._cancelled_on:
            self._cancelled_ended(ev.rank, ev.key)  # a cancelled task dropped unstarted: never ran there
        entry = self._steals.get(ev.key)
        if entry is None or entry[0] != ev.rank:
            return  # the task already left the victim; nothing was planned on this reply
        self._end_steal(ev.key)
        ts = self._tasks[ev.key]
        self._rebalance = True
        if not ev.ok:
            return  # it runs (or ran) on the victim
        thief = entry[1]
        self._leave_worker(ts, drop=False)
        self._transition(ts, READY)
        cands = self._candidates(ts)
        if thief is not None and thief in cands:
            self._assign(ts, thief)
        else:
            self._place(ts)

    def _on_worker_lost(self, ev: RankLost) -> None:
        rank = ev.rank
        if rank not in self._host:
            return
        self._cancelled_on.pop(rank, None)
        self._rebalance = True
        for key, (victim, thief) in list(self._steals.items()):
            if victim == rank:
                self._end_steal(key)
            elif thief == rank:
                self._incoming[rank].discard(key)  # the rank's tables go below
                self._steals[key] = (victim, None)
        orphans = [self._tasks[k] for k in self._processing[rank]]
        for ts in orphans:
            self._leave_worker(ts, drop=False)
        held = self._has_what.pop(rank)
        del self._host[rank], self._processing[rank], self._occupancy[rank], self._incoming[rank]
        del self._incoming_load[rank]
        self._ranks.remove(rank)
        self._frees.pop(rank, None)
        roots = [ts.key for ts in orphans]
        for ts in orphans:
            self._transition(ts, RELEASED)
        for key in sorted(held):
            holders = self._who_has[key]
            holders.discard(rank)
            if holders:
                continue
            del self._who_has[key]
            ts = self._tasks[key]
            if not ts.runnable:
                msg = f"key {key!r} was scattered data held only by lost worker rank {rank}; it cannot be recomputed"
                self._err(ts, WorkerLost(msg))
                continue
            self._transition(ts, RELEASED)
            if ts.wanted:
                roots.append(key)
            for dkey in sorted(ts.dependents):
                dts = self._tasks[dkey]
                if dts.state == WAITING:
                    dts.waiting_on.add(key)
                    roots.append(key)
                elif dts.state == PROCESSING:  # it would fetch the lost input: start it over
                    self._leave_worker(dts, drop=True)
                    self._transition(dts, RELEASED)
                    roots.append(dkey)
        self._activate(roots)

    def _add_replica(self, ts: _Task, rank: int) -> None:
        key = ts.key
        holders = self._who_has.get(key)
        if holders is None:
            self._who_has[key] = {rank}
        else:
            holders.add(rank)
        self._has_what[rank].add(key)
        self._unfree(rank, key)

    def _drop_data(self, ts: _Task) -> None:
        key = ts.key
        for rank in self._who_has.pop(key, ()):
            self._has_what[rank].discard(key)
            self._free(rank, key)

    def _unfree(self, rank: int, key: str) -> None:
        """``key`` is (again) wanted on ``rank``: it must not be freed there after this point."""
        if self._frees:
            freeing = self._frees.get(rank)
            if freeing is not None:
                freeing.discard(key)  # freed and needed again within one event: not freed
        if self._held_frees:
            held = self._held_frees.get(rank)
            if held is not None and key in held:
                # freed by an earlier event of the batch: that free must reach the rank first
                del self._held_frees[rank]
                self._out.append(Free(rank, sorted(held)))

    def _free(self, rank: int, key: str) -> None:
        if rank in self._host:
            freeing = self._frees.get(rank)
            if freeing is None:
                self._frees[rank] = {key}
            else:
                freeing.add(key)

    def _candidates(self, ts: _Task) -> frozenset[int]:
        return policy.valid_workers(self._host, ts.spec.workers, ts.spec.allow_other_workers)

    def _place(self, ts: _Task) -> None:
        """Put a ready task on a worker, or err it if no worker may run it."""
        spec = ts.spec
        if not spec.deps and spec.workers is None and not ts.failed_on and self._ranks:
            # policy.decide_worker without bytes to move: least occupied, then lowest rank
            occupancy, incoming, cancelled = self._occupancy, self._incoming_load, self._cancelled_on
            best, least = None, 0.0
            for rank in self._ranks:  # ascending: strict < keeps the lowest rank of a tie
                occ = occupancy[rank] + incoming[rank]
                if cancelled and rank in cancelled:  # still running a cancelled task
                    occ += sum(cancelled[rank].values())
                if best is None or occ < least:
                    best, least = rank, occ
            self._assign(ts, best)
            return
        if not self._host:
            self._err(ts, WorkerLost(f"task {ts.key!r} cannot run: every worker was lost"))
            return
        cands = self._candidates(ts)
        if not cands:
            self._err(ts, policy.restriction_error(ts.key, ts.spec.workers or (), self._host))
            return
        if ts.failed_on:  # a retry: prefer a free worker where it has not failed yet
            others = cands - ts.failed_on
            if any(not self._processing[r] and not self._incoming[r] and r not in self._cancelled_on for r in others):
                cands = others
        occupancy = {r: self.occupancy(r) for r in cands}
        rank = policy.decide_worker(ts.spec.deps, cands, self._who_has, self._nbytes, occupancy, self._host)
        self._assign(ts, rank)

    def _assign(self, ts: _Task, rank: int) -> None:
        self._transition(ts, PROCESSING)
        key = ts.key
        ts.processing_on = rank
        ts.expected = expected = self.durations.get(ts.spec.fn_name, policy.DEFAULT_DURATION)
        self._processing[rank][key] = None
        self._occupancy[rank] += expected
        self._rebalance = True
        where = {}
        if ts.spec.deps:
            host_of = self._host.get
            for dep in ts.spec.deps:
                where[dep] = policy.holder_order(self._who_has.get(dep, ()), rank, host_of)
        self._unfree(rank, key)
        self._out.append(_new(Compute, (rank, key, where)))

    def _leave_worker(self, ts: _Task, drop: bool) -> None:
        """Take a processing task off its worker; ``drop`` asks the worker to discard it."""
        rank = ts.processing_on
        if rank is None:
            return
        key = ts.key
        if self._steals and key in self._steals:
            self._end_steal(key)
        queue = self._processing[rank]
        del queue[key]
        if queue:
            self._occupancy[rank] -= ts.expected
        else:
            self._occupancy[rank] = 0.0  # no float drift once the queue is empty
            self._rebalance = True
        ts.processing_on = None
        ts.expected = 0.0
        if drop:
            self._out.append(Steal(rank, key))

    def _end_steal(self, key: str) -> None:
        _, thief = self._steals.pop(key)
        if thief is not None:
            incoming = self._incoming[thief]
            incoming.discard(key)
            if incoming:
                self._incoming_load[thief] -= self._tasks[key].expected
            else:
                self._incoming_load[thief] = 0.0  # no float drift once nothing is in flight

    def _balance(self) -> None:
        incoming = self._incoming
        cancelled = self._cancelled_on  # ranks still running a cancelled task: busy, their queue all waits
        idle = [r for r, q in self._processing.items() if not q and not incoming[r] and r not in cancelled]
        if not idle:
            return
        queues = {}
        for r, q in self._processing.items():
            waiting = [k for k in q if k not in self._steals]
            if r in cancelled and waiting:
                queues[r] = [next(iter(cancelled[r])), *waiting]  # index 0 counts as running
            elif len(q) >= 2:
                queues[r] = waiting
        if not queues:
            return

        def allowed_of(key: str) -> frozenset[int] | None:
            spec = self._tasks[key].spec
            if spec.workers is None:
                return None
            if spec.allow_other_workers and self._tasks[key].processing_on not in spec.workers:
                return None  # already running outside its preference: anywhere will do
            return spec.workers

        tasks, durations = self._tasks, self.durations

        def expected_of(key: str) -> float:
            # today's estimate, not the one of its assignment: a burst placed while its function
            # was unknown (DEFAULT_DURATION) is not stolen as half-second tasks once they are tiny
            ts = tasks.get(key)
            if ts is not None and ts.processing_on is not None:
                return durations.get(ts.spec.fn_name, ts.expected)
            return next((c[key] for c in cancelled.values() if key in c), 0.0)  # a cancelled one still running

        plan = policy.balance_plan(
            idle,
            queues,
            expected_of,
            lambda k: self._tasks[k].spec.deps,
            allowed_of,
            self._who_has,
            self._nbytes,
            self._host,
        )
        for thief, victim, key in plan:
            self._steals[key] = (victim, thief)
            self._incoming[thief].add(key)
            self._incoming_load[thief] += self._tasks[key].expected
            self._out.append(Steal(victim, key))
