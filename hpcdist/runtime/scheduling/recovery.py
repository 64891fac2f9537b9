"""What the loss of a worker costs the scheduler state, and how the state recovers from it.

:class:`Recovery` handles :class:`~hpcdist.runtime.scheduling.vocabulary.RankLost` for
:class:`~hpcdist.runtime.scheduling.state.SchedulerState`, through the state's own transition, error
and activation steps (so the state stays the only writer of task states). The rules:

- The tasks queued on the lost rank go back to be placed on the live workers. A worker's death is
  an infrastructure failure: it never uses up a task's own ``retries`` (``retries_left`` is kept).
- The task it was *running* is suspect: the death is counted on the record (``killed_on``, the
  ranks in the order they died). At ``allowed_failures`` deaths the task errs with
  :class:`~hpcdist.errors.KilledWorker` instead of being placed again, and so do its pending
  dependents (dask errs at the death after ``distributed.scheduler.allowed-failures``).
- Which task was running, unless the event says so (``RankLost.running``): a worker runs the tasks
  it is sent one at a time, in the order they arrive (its run queue is FIFO), and the state's queue
  of a rank (``WorkerRecord.processing``) is in the order the tasks were sent; a task leaves it
  when it is reported done, failed or handed back. So the head of that queue is the oldest task
  not reported yet: the running one. If the rank still ran a cancelled task (it stays busy until it
  reports its end), that task held the executor and no queued task is suspect. The rule can blame
  the wrong task when the head was still fetching an input while a later task ran, or when the head
  had finished but its report was still held back for a batch (a worker flushes those within about
  a millisecond of starting the next task): the runtime names the running task when it knows it.
- A key whose only copy was on the lost rank is recomputed from its lineage if a client Future
  wants it or a pending task needs it: waiting dependents wait for it again, a dependent
  processing elsewhere (it would fetch the lost copy) is dropped there and waits for it; released
  ancestors are recomputed with it (:func:`~hpcdist.runtime.scheduling.tasks.released_closure`).
  A key nobody needs any more is not recomputed.
- Scattered data has no lineage: a key held only by the lost rank errs with
  :class:`~hpcdist.errors.WorkerLost` naming the key and the rank, and so do its pending
  dependents; so does a lost key whose lineage reaches scattered data that is gone.
- Nothing is addressed to the lost rank after the event, not even instructions of earlier events
  of the same batch (:meth:`~hpcdist.runtime.scheduling.outbox.Outbox.drop_rank`).

What the loss cost is returned as one
:class:`~hpcdist.runtime.scheduling.vocabulary.Recovered`, read from the transitions the event
really made (the state hands them over): a task that was pending and is pending again was put back
(``requeued``), a key that was in memory or released and is pending again is recomputed, a key
that moved to erred erred.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from hpcdist.errors import KilledWorker, WorkerLost
from hpcdist.runtime.scheduling.dispatch import Dispatch
from hpcdist.runtime.scheduling.tasks import TaskRecord
from hpcdist.runtime.scheduling.vocabulary import (
    ERRED, PENDING, PROCESSING, RECOVERED_KEYS_MAX, RELEASED, WAITING, RankLost, Recovered,
)
from hpcdist.runtime.scheduling.workers import WorkerRecord

__all__ = ["DEFAULT_ALLOWED_FAILURES", "Recovery", "recovered", "running_task"]

#: deaths of workers running a task before it errs with KilledWorker (dask's allowed-failures)
DEFAULT_ALLOWED_FAILURES = 3


def running_task(rec: WorkerRecord) -> str | None:
    """The task lost worker ``rec`` was most likely running (see the module's rules), or None."""
    if rec.cancelled or not rec.processing:
        return None
    return next(iter(rec.processing))


class Recovery:
    """Handles the loss of a worker for the scheduler state; the only writer of ``TaskRecord.killed_on``.

    Args:
        tasks: The state's key -> record table (read only).
        dispatch: The state's dispatch (queues, holdings).
        transition: The state's transition step, ``(record, to_state)``.
        err: The state's step that errs a record and its pending dependents, ``(record, error)``.
        activate: The state's step that schedules released keys and the released keys they need.
        allowed_failures: Deaths of workers running a task before it errs with KilledWorker (>= 1).

    Attributes:
        allowed_failures: As given.
    """

    __slots__ = ("allowed_failures", "_tasks", "_dispatch", "_transition", "_err", "_activate")

    def __init__(
        self,
        tasks: Mapping[str, TaskRecord],
        dispatch: Dispatch,
        transition: Callable[[TaskRecord, str], None],
        err: Callable[[TaskRecord, object], None],
        activate: Callable[[Iterable[str]], None],
        allowed_failures: int = DEFAULT_ALLOWED_FAILURES,
    ) -> None:
        if allowed_failures < 1:
            raise ValueError(f"allowed_failures must be at least 1, not {allowed_failures!r}")
        self.allowed_failures = allowed_failures
        self._tasks = tasks
        self._dispatch = dispatch
        self._transition = transition
        self._err = err
        self._activate = activate

    def rank_lost(self, ev: RankLost, moves: list[tuple[str, str, str]]) -> Recovered | None:
        """Apply the loss of worker ``ev.rank``; return what it cost (None for an unknown or
        already lost rank, which changes nothing).

        Args:
            ev: The event.
            moves: The list to which the state appends ``(key, from_state, to_state)`` for every
                transition of this event (this class's, the activation's and the erring's).
        """
        rank, dispatch, tasks = ev.rank, self._dispatch, self._tasks
        if rank not in dispatch.workers:
            return None
        running = ev.running if ev.running is not None else (running_task(dispatch.workers[rank]),)
        orphans, lost = dispatch.remove_rank(rank)
        roots = [ts.key for ts in orphans]
        for ts in orphans:
            self._transition(ts, RELEASED)
        blamed = {}
        for key in running:
            ts = tasks.get(key)
            if ts is not None and ts.state == RELEASED and ts in orphans:
                ts.killed_on = (*ts.killed_on, rank)
                blamed[key] = len(ts.killed_on)
                if len(ts.killed_on) >= self.allowed_failures:
                    self._err(ts, KilledWorker(key, ts.killed_on))
        for key in lost:
            ts = tasks[key]
            gap = self._lineage_gap(ts)
            if gap is not None:
                self._err(ts, WorkerLost(_lost_message(key, gap, rank)))
                continue
            self._transition(ts, RELEASED)
            if ts.wanted:
                roots.append(key)
            for dkey in sorted(ts.dependents):
                dts = tasks[dkey]
                if dts.state == WAITING:
                    dts.waiting_on.add(key)
                    roots.append(key)
                elif dts.state == PROCESSING:  # it would fetch the lost copy: start it over
                    dispatch.leave(dts, drop=True)
                    self._transition(dts, RELEASED)
                    roots.append(dkey)
        self._activate(roots)
        return recovered(rank, blamed, moves)

    def _lineage_gap(self, ts: TaskRecord) -> str | None:
        """The first key of the lineage of lost ``ts`` that cannot be recomputed, or None.

        ``ts`` itself if it is scattered data; else a missing or scattered dependency reached
        through released ancestors (whose data was freed). Walked only when a worker is lost.
        """
        if not ts.runnable:
            return ts.key
        tasks, seen, stack = self._tasks, {ts.key}, [ts]
        while stack:
            for dep in stack.pop().spec.deps:
                dts = tasks.get(dep)
                if dts is None:  # scattered data, forgotten once nothing pending needed it
                    return dep
                if dts.state == RELEASED and dep not in seen:
                    seen.add(dep)
                    stack.append(dts)
        return None


def _lost_message(key: str, gap: str, rank: int) -> str:
    if gap == key:
        return f"key {key!r} was scattered data held only by lost worker rank {rank}; it cannot be recomputed"
    return (
        f"key {key!r} was held only by lost worker rank {rank} and cannot be recomputed: its lineage"
        f" needs {gap!r}, scattered data that is gone"
    )


def recovered(rank: int, blamed: Mapping[str, int], moves: Iterable[tuple[str, str, str]]) -> Recovered:
    """The :class:`Recovered` of the loss of ``rank`` from the transitions it made.

    Args:
        rank: The lost worker.
        blamed: Each task it was running -> the workers that have died running it so far.
        moves: ``(key, from_state, to_state)`` of every transition of the event, in order.
    """
    first: dict[str, str] = {}
    last: dict[str, str] = {}
    for key, was, to in moves:
        first.setdefault(key, was)
        last[key] = to
    requeued, recomputed, erred = [], [], []
    for key, to in last.items():
        if to == ERRED:
            erred.append(key)
        elif to in PENDING:
            (requeued if first[key] in PENDING else recomputed).append(key)
    running = sorted(blamed)
    return Recovered(
        rank, tuple(running), tuple(blamed[k] for k in running), _first(requeued), _first(recomputed), _first(erred),
        len(requeued), len(recomputed), len(erred),
    )


def _first(keys: list[str]) -> tuple[str, ...]:
    return tuple(sorted(keys)[:RECOVERED_KEYS_MAX])
