"""Placement and stealing decisions over the live tables: which worker a ready task goes to, and
which queued tasks idle workers should steal.

Read-only: these functions read the :class:`~hpcdist.runtime.scheduling.workers.WorkerTable` and
the task records, apply the pure rules of :mod:`hpcdist.runtime.scheduling.policy`, and return
their choice; :class:`~hpcdist.runtime.scheduling.dispatch.Dispatch` carries it out.
"""

from __future__ import annotations

from collections.abc import Mapping

from hpcdist.errors import WorkerLost
from hpcdist.runtime.scheduling import policy
from hpcdist.runtime.scheduling.tasks import TaskRecord
from hpcdist.runtime.scheduling.workers import WorkerTable

__all__ = ["candidates", "choose_worker", "steal_plan"]


def candidates(ts: TaskRecord, workers: WorkerTable) -> frozenset[int]:
    """Return the live ranks ``ts`` may run on (see :func:`policy.valid_workers`)."""
    return policy.valid_workers(workers.hosts, ts.spec.workers, ts.spec.allow_other_workers)


def choose_worker(
    ts: TaskRecord, workers: WorkerTable, nbytes: Mapping[str, int]
) -> tuple[int, None] | tuple[None, BaseException]:
    """Return ``(rank, None)`` for the worker to run ready task ``ts``, or ``(None, error)`` if none may.

    A retry prefers a free worker where the task has not failed yet; otherwise
    :func:`policy.decide_worker` chooses among the candidates.
    """
    if not len(workers):
        return None, WorkerLost(f"task {ts.key!r} cannot run: every worker was lost")
    cands = candidates(ts, workers)
    if not cands:
        return None, policy.restriction_error(ts.key, ts.spec.workers or (), workers.hosts)
    if ts.failed_on:
        others = cands - ts.failed_on
        if any(workers[r].is_free() for r in others):
            cands = others
    occupancy = {r: workers.occupancy(r) for r in cands}
    return policy.decide_worker(ts.spec.deps, cands, workers.holders, nbytes, occupancy, workers.hosts), None


def steal_plan(
    workers: WorkerTable,
    tasks: Mapping[str, TaskRecord],
    durations: Mapping[str, float],
    nbytes: Mapping[str, int],
) -> list[tuple[int, int, str]]:
    """Return the ``(thief, victim, key)`` steals that balance the queues (see :func:`policy.balance_plan`).

    A worker still running a cancelled task is busy: it steals nothing, and that task counts as
    the running head of its queue.
    """
    idle = [rec.rank for rec in workers.records() if rec.is_free()]
    if not idle:
        return []
    queues = {}
    for rec in workers.records():
        q = rec.processing
        waiting = [k for k in q if not workers.is_stealing(k)]
        if rec.cancelled and waiting:
            queues[rec.rank] = [next(iter(rec.cancelled)), *waiting]  # index 0 counts as running
        elif len(q) >= 2:
            queues[rec.rank] = waiting
    if not queues:
        return []

    def allowed_of(key: str) -> frozenset[int] | None:
        spec = tasks[key].spec
        if spec.workers is None:
            return None
        if spec.allow_other_workers and tasks[key].processing_on not in spec.workers:
            return None  # already running outside its preference: anywhere will do
        return spec.workers

    def expected_of(key: str) -> float:
        # today's estimate, not the one of its assignment: a burst placed while its function
        # was unknown (DEFAULT_DURATION) is not stolen as half-second tasks once they are tiny
        ts = tasks.get(key)
        if ts is not None and ts.processing_on is not None:
            return durations.get(ts.spec.fn_name, ts.expected)
        # a cancelled one still running
        return next((rec.cancelled[key] for rec in workers.records() if key in rec.cancelled), 0.0)

    return policy.balance_plan(
        idle, queues, expected_of, lambda k: tasks[k].spec.deps, allowed_of, workers.holders, nbytes, workers.hosts
    )
