"""Where tasks run and what the workers are told, for the scheduler state.

:class:`Dispatch` owns the :class:`~hpcdist.runtime.scheduling.workers.WorkerTable`, the
:class:`~hpcdist.runtime.scheduling.outbox.Outbox` and whether the queues are to be rebalanced at
the end of a batch. Of a task record it writes only ``processing_on`` and ``expected`` (the worker
a task is queued on and the load it adds there); the task's state is the state's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hpcdist.runtime.scheduling import placement, policy
from hpcdist.runtime.scheduling.outbox import Outbox
from hpcdist.runtime.scheduling.tasks import TaskRecord, TaskTable
from hpcdist.runtime.scheduling.vocabulary import MEMORY, Compute, Instruction, Steal
from hpcdist.runtime.scheduling.workers import WorkerTable

__all__ = ["Dispatch"]

_new = tuple.__new__  # builds a per-task instruction without its class's Python-level __new__


class Dispatch:
    """The workers' queues, holdings and steals, and the instructions of the current batch.

    Args:
        workers: Rank -> host name of every worker.
        tasks: The state's task table (read only).
        durations: Function name -> expected task duration (read only).

    Attributes:
        workers: The per-worker records (read them; only this class changes them).
        outbox: The instructions of the current batch (the state appends the ones about results).
    """

    __slots__ = ("workers", "outbox", "_rebalance", "_tasks", "_nbytes", "_durations")

    def __init__(self, workers: dict[int, str], tasks: TaskTable, durations: Mapping[str, float]) -> None:
        self.workers = WorkerTable(workers)
        self.outbox = Outbox()
        self._rebalance = False
        self._tasks = tasks.records
        self._nbytes = tasks.nbytes
        self._durations = durations

    def start(self) -> None:
        """A batch of events begins."""
        self._rebalance = False

    def finish(self) -> list[Instruction]:
        """End the batch: plan the steals it calls for and return its instructions."""
        if self._rebalance:
            workers, tasks, out = self.workers, self._tasks, self.outbox.out
            for thief, victim, key in placement.steal_plan(workers, tasks, self._durations, self._nbytes):
                workers.start_steal(key, victim, thief, tasks[key].expected)
                out.append(Steal(victim, key))
        return self.outbox.take()

    def choose(self, ts: TaskRecord) -> tuple[int, None] | tuple[None, BaseException]:
        """Return ``(rank, None)`` for the worker to run ready ``ts``, or ``(None, error)`` if none may."""
        spec = ts.spec
        workers = self.workers
        if not spec.deps and spec.workers is None and not ts.failed_on and workers.ranks:
            # policy.decide_worker without bytes to move: least occupied, then lowest rank
            return workers.least_occupied(), None
        return placement.choose_worker(ts, workers, self._nbytes)

    def assign(self, ts: TaskRecord, rank: int) -> None:
        """Queue ``ts`` (now processing) on ``rank`` and tell the worker where its inputs are."""
        key = ts.key
        ts.processing_on = rank
        ts.expected = expected = self._durations.get(ts.spec.fn_name, policy.DEFAULT_DURATION)
        workers = self.workers
        workers.assign(rank, key, expected)
        self._rebalance = True
        where = {}
        if ts.spec.deps:
            holders, host_of = workers.holders, workers.hosts.get
            for dep in ts.spec.deps:
                where[dep] = policy.holder_order(holders.get(dep, ()), rank, host_of)
        outbox = self.outbox
        outbox.unfree(rank, key)
        outbox.out.append(_new(Compute, (rank, key, where)))

    def leave(self, ts: TaskRecord, drop: bool) -> None:
        """Take a processing task off its worker; ``drop`` asks the worker to discard it."""
        rank = ts.processing_on
        if rank is None:
            return
        if self.workers.unassign(rank, ts.key, ts.expected):
            self._rebalance = True
        ts.processing_on = None
        ts.expected = 0.0
        if drop:
            self.outbox.out.append(Steal(rank, ts.key))

    def cancel(self, ts: TaskRecord) -> None:
        """Take cancelled ``ts`` off its worker, which stays busy until it reports the task's end."""
        if ts.processing_on is not None:
            self.workers.cancel_running(ts.processing_on, ts.key, ts.expected)
        self.leave(ts, drop=True)

    def cancelled_ended(self, rank: int, key: str) -> None:
        """``rank`` no longer runs cancelled ``key`` (it reported the end, or dropped it unstarted)."""
        if self.workers.cancelled_ended(rank, key):
            self._rebalance = True  # it is free now: it may take work from others

    def steal_answered(self, key: str, rank: int) -> tuple[int, int | None] | None:
        """Victim ``rank`` answered the steal of ``key``: return the steal's ``(victim, thief)``, or
        None if no steal from ``rank`` was in flight (the task already left it)."""
        entry = self.workers.steal_of(key)
        if entry is None or entry[0] != rank:
            return None
        self.workers.end_steal(key)
        self._rebalance = True
        return entry

    def retire(self, ts: TaskRecord, drop: bool) -> None:
        """Take ``ts`` off its worker (see :meth:`leave`) and free its data wherever it is held."""
        if ts.processing_on is not None:
            self.leave(ts, drop)
        if ts.state == MEMORY:
            self.drop_data(ts)

    def remove_rank(self, rank: int) -> tuple[list[TaskRecord], list[str]]:
        """Forget lost ``rank``: return the tasks that were queued there (in order, now on no
        worker) and the keys it alone held."""
        self._rebalance = True
        orphans = [self._tasks[k] for k in self.workers[rank].processing]
        for ts in orphans:
            self.leave(ts, drop=False)
        _, lost = self.workers.remove(rank)
        self.outbox.drop_rank(rank)
        return orphans, lost

    def fetched(self, rank: int, keys: Iterable[str]) -> None:
        """``rank`` fetched ``keys`` to run a task: it holds those still in memory, frees the others."""
        tasks = self._tasks
        for key in keys:
            ts = tasks.get(key)
            if ts is not None and ts.state == MEMORY:
                self.add_replica(ts, rank)
            else:
                self.free(rank, key)

    def add_replica(self, ts: TaskRecord, rank: int) -> None:
        """``rank`` holds the data of ``ts``."""
        self.workers.add_replica(rank, ts.key)
        self.outbox.unfree(rank, ts.key)

    def drop_data(self, ts: TaskRecord) -> None:
        """Free the data of ``ts`` on every worker holding it."""
        key = ts.key
        for rank in self.workers.drop_replicas(key):
            self.free(rank, key)

    def free(self, rank: int, key: str) -> None:
        """Free ``key`` on ``rank`` if it is alive."""
        if rank in self.workers.hosts:
            self.outbox.free(rank, key)
