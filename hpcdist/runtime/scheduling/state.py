"""The scheduler's task state machine: events in, instructions out, no I/O.

:meth:`SchedulerState.handle` (one event) and :meth:`SchedulerState.handle_many` (a batch, e.g.
every result of one worker message) are the only ways the state changes. Time arrives only inside
events; every transition is appended to :attr:`SchedulerState.log` (a
:class:`~hpcdist.runtime.scheduling.transitions.TransitionLog`: the most recent
:data:`~hpcdist.runtime.scheduling.transitions.LOG_MAX` are kept), which becomes the run's trace.

Task states::

    released -> waiting -> ready -> processing -> memory | erred     (+ cancelled, forgotten)

``released`` means "known, not scheduled, holds no data". A key whose data is no longer needed
goes back to ``released`` instead of being forgotten while a task that depends on it is still
alive (waiting/ready/processing/memory/released): that keeps the lineage needed to recompute a
key lost with its worker. ``forgotten`` means the key is no longer known (:meth:`state_of`
returns None). ``ready`` is transient: a ready task is placed in the same ``handle()`` call.

Data of a key is freed (a ``Free`` instruction) as soon as no client Future wants it and no
waiting/ready/processing task depends on it. An illegal transition raises
:class:`InvalidTransition` (an :class:`~hpcdist.errors.HpcdistError`: a bug in hpcdist's own loop,
which the glue turns into an abort); broken invariants found by :meth:`SchedulerState.validate`
raise AssertionError (see :func:`~hpcdist.runtime.scheduling.check.check_invariants`). Instructions
are named tuples, one class per kind; see :data:`~hpcdist.runtime.scheduling.vocabulary.INSTRUCTIONS`.

The state owns, each the only writer of its tables, a :class:`~hpcdist.runtime.scheduling.tasks.TaskTable`
(key -> record), a :class:`~hpcdist.runtime.scheduling.dispatch.Dispatch` (the workers' queues, holdings,
steals, and the batch's instructions), a :class:`~hpcdist.runtime.scheduling.settling.SettleQueue` (keys
to check for freeing or forgetting) and the transition log; it changes the task records' states.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hpcdist.errors import WorkerLost
from hpcdist.runtime.scheduling import placement, policy, recovery, settling
from hpcdist.runtime.scheduling.check import check_invariants
from hpcdist.runtime.scheduling.dispatch import Dispatch
from hpcdist.runtime.scheduling.settling import SettleQueue
from hpcdist.runtime.scheduling.tasks import NO_RANKS, TaskRecord, TaskTable, released_closure
from hpcdist.runtime.scheduling.transitions import TransitionLog
from hpcdist.runtime.scheduling.vocabulary import (
    CANCELLED, ERRED, FORGOTTEN, MEMORY, NEXT_STATES, PENDING, PROCESSING, READY, RELEASED, WAITING, Cancel,
    Cancelled, Erred, Failed, Finished, Instruction, Memory, RankLost, Release, Scatter, StealReply, Stimulus, Submit,
    TaskSpec,
)
from hpcdist.runtime.scheduling.workers import WorkerTable

__all__ = ["SchedulerState"]

_new = tuple.__new__  # builds a per-task instruction without its class's Python-level __new__


class SchedulerState:
    """All task and worker bookkeeping of the scheduler (rank 0).

    Args:
        workers: Rank -> host name of every worker.
        allowed_failures: Deaths of workers running a task before it errs with
            :class:`~hpcdist.errors.KilledWorker` (see :mod:`~hpcdist.runtime.scheduling.recovery`).

    Attributes:
        log: ``(time, key, from_state, to_state, stimulus_id)`` of the most recent :data:`LOG_MAX`
            transitions, oldest first (``stimulus_id`` is the causing event's, see :meth:`story`).
        durations: Function name -> running average (EMA) of its task durations in seconds.
    """

    def __init__(self, workers: dict[int, str], allowed_failures: int = recovery.DEFAULT_ALLOWED_FAILURES) -> None:
        self.log = TransitionLog()
        self.durations: dict[str, float] = {}
        self._table = TaskTable()
        self._tasks = self._table.records  # read here; only the table adds and deletes keys
        self._dispatch = Dispatch(workers, self._table, self.durations)
        self._workers = self._dispatch.workers  # read here; only the dispatch changes it
        self._live = self._workers.hosts  # live rank -> host (a C-level `in`, unlike the table's)
        self._settling = SettleQueue()
        self._mark_transition = self._settling.mark_transition
        # per handle_many() call
        self._now = 0.0
        self._stimulus: Stimulus = ""
        self._out: list[Instruction] = self._dispatch.outbox.out  # the outbox's list of the current call
        self._recovery = recovery.Recovery(self._tasks, self._dispatch, lambda ts, to: self._transition(ts, to),
                                           self._err, self._activate, allowed_failures)

    # ------------------------------------------------------------------ queries

    @property
    def workers(self) -> dict[int, str]:
        """Rank -> host name of the live workers."""
        return dict(self._workers.hosts)

    @property
    def allowed_failures(self) -> int:
        """Deaths of workers running a task before it errs with KilledWorker."""
        return self._recovery.allowed_failures

    @property
    def worker_table(self) -> WorkerTable:
        """The per-worker records (read them; only the state's dispatch changes them)."""
        return self._workers

    def task(self, key: str) -> TaskRecord | None:
        """Return the record of ``key`` (read it; only the state changes it), or None if unknown."""
        return self._tasks.get(key)

    def tasks(self) -> Iterable[TaskRecord]:
        """Every known key's record, in the order the keys became known."""
        return self._tasks.values()

    def state_of(self, key: str) -> str | None:
        """Return the state of ``key``, or None if it is unknown or forgotten."""
        ts = self._tasks.get(key)
        return ts.state if ts else None

    def error_of(self, key: str) -> object:
        """Return the error object of an erred key (None otherwise)."""
        ts = self._tasks.get(key)
        return ts.error if ts else None

    def who_has(self, keys: Iterable[str] | None = None) -> dict[str, list[int]]:
        """Return key -> sorted ranks holding it, for ``keys`` or for every key in memory."""
        return self._workers.who_has(keys)

    def has_what(self) -> dict[int, list[str]]:
        """Return rank -> sorted keys it holds, for every live worker."""
        return self._workers.has_what()

    def processing_on(self, rank: int) -> list[str]:
        """Return the keys assigned to ``rank``, in assignment (execution) order."""
        return self._workers.queued(rank)

    def occupancy(self, rank: int) -> float:
        """Return the expected seconds of work queued on ``rank``, steals in flight included."""
        return self._workers.occupancy(rank)

    def expected_duration(self, fn_name: str) -> float:
        """Return the expected duration of a task of function ``fn_name``."""
        return self.durations.get(fn_name, policy.DEFAULT_DURATION)

    def unfinished_wanted(self) -> list[str]:
        """Keys a client Future waits for that are not in memory, erred or cancelled yet."""
        return self._table.unfinished_wanted()

    def settling(self) -> list[str]:
        """Keys marked to be checked for freeing or forgetting (empty outside :meth:`handle`)."""
        return self._settling.keys()

    def pop_forgotten(self) -> list[str]:
        """Return the keys forgotten since the last call (e.g. to drop their payloads), in order."""
        return self._table.pop_forgotten()

    def history(self, key: str) -> list[tuple[float, str, str]]:
        """Return ``(time, from_state, to_state)`` of the transitions of ``key`` still in the log."""
        return self.log.history(key)

    def story(self, key: str) -> list[tuple[float, str, str, str]]:
        """Return ``(time, from_state, to_state, cause)`` of the transitions of ``key`` still in the
        log; ``cause`` names the message that caused each (see :func:`~hpcdist.runtime.scheduling.vocabulary.stimulus_name`)."""
        return self.log.story(key)

    # ------------------------------------------------------------------ events

    def handle(self, event: object) -> list[Instruction]:
        """Apply one event and return the instructions it produces.

        Raises:
            InvalidTransition: If the event would move a task along an illegal transition.
            TypeError: If ``event`` is not one of this module's event types.
        """
        return self._apply(_steps((event,)))

    def handle_many(self, events: Sequence[object]) -> list[Instruction]:
        """Apply several events in order, as one step, and return the instructions they produce.

        The final state and the instructions are those of calling :meth:`handle` for each event
        in turn, with two differences that make a batch cheaper: ``free`` instructions are merged
        into one per rank at the end (a rank's frees come earlier, before the instruction that
        needs them first, when a later event places or replicates a key freed there), and work
        stealing is planned once, after the last event, from the state the batch ends in (so a
        worker idle only between two events of the batch steals nothing). The order of the other
        instructions is kept.

        Raises:
            InvalidTransition: If an event would move a task along an illegal transition.
            TypeError: If an event is not one of this module's event types (before any is applied).
        """
        return self._apply(_steps(events))

    def _apply(self, steps: Sequence[tuple[object, object]]) -> list[Instruction]:
        dispatch = self._dispatch
        outbox = dispatch.outbox
        self._out = outbox.out
        dispatch.start()
        marked = self._settling.order
        for handler, event in steps:
            self._now = event.time
            self._stimulus = event.stimulus_id
            handler(self, event)
            if marked:
                self._settle()
            outbox.end_event()
        self._stimulus = ""
        out = dispatch.finish()
        self._out = outbox.out  # the returned list is the caller's
        return out

    def _on_submit(self, ev: Submit) -> None:
        roots: list[str] = []
        for spec in ev.tasks:
            ts = self._tasks.get(spec.key)
            if ts is not None and ts.state != CANCELLED:
                ts.wanted = True
                if ts.state == MEMORY:
                    self._out.append(_new(Memory, (ts.key, None)))
                elif ts.state == ERRED:
                    self._out.append(Erred(ts.key, ts.error))
                roots.append(ts.key)
                continue
            if ts is not None:  # cancelled: recreate from the new spec
                self._settling.mark_all(self._table.unlink(ts))
                self._transition(ts, RELEASED)
                ts.spec, ts.error, ts.failed_on = spec, None, NO_RANKS
                ts.wanted, ts.runnable, ts.retries_left = True, True, spec.retries
            else:  # wanted before its first transition, which then marks nothing to settle
                ts = self._table.add(spec)
                ts.wanted, ts.runnable, ts.retries_left = True, True, spec.retries
                self._transition(ts, RELEASED)
            roots.append(ts.key)
        self._activate(roots)

    def _on_scatter(self, ev: Scatter) -> None:
        ts = self._tasks.get(ev.key)
        ranks = [r for r in dict.fromkeys(ev.ranks) if r in self._workers]
        if ts is not None and ts.state not in (CANCELLED, RELEASED):
            # pure-key dedup: an existing key is not replaced by scattered data
            ts.wanted = True
            if ts.state == MEMORY:
                for r in ranks:
                    self._dispatch.add_replica(ts, r)
                self._out.append(_new(Memory, (ts.key, None)))
                return
            for r in ranks:
                self._dispatch.free(r, ts.key)
            if ts.state == ERRED:
                self._out.append(Erred(ts.key, ts.error))
            return
        if ts is None:
            ts = self._table.add(TaskSpec(ev.key))
            self._transition(ts, RELEASED)
            ts.runnable = False
        elif ts.state == CANCELLED:
            self._settling.mark_all(self._table.unlink(ts))
            self._transition(ts, RELEASED)
            ts.spec, ts.error, ts.runnable = TaskSpec(ev.key), None, False
        ts.wanted = True
        if not ranks:
            self._err(ts, WorkerLost(f"key {ev.key!r} was scattered to ranks {list(ev.ranks)}, none of which is alive"))
            return
        ts.nbytes = int(ev.nbytes)
        self._transition(ts, MEMORY)
        for r in ranks:
            self._dispatch.add_replica(ts, r)
        self._out.append(_new(Memory, (ts.key, None)))
        self._data_arrived(ts)

    def _on_finished(self, ev: Finished) -> None:
        rank = ev.rank
        if rank not in self._live:
            return  # a message from a worker declared lost: its data is gone with it
        dispatch = self._dispatch
        if self._workers.cancelling:
            dispatch.cancelled_ended(rank, ev.key)
        if ev.fetched:
            dispatch.fetched(rank, ev.fetched)
        ts = self._tasks.get(ev.key)
        state = ts.state if ts is not None else None
        if state != PROCESSING:
            if state == MEMORY:
                dispatch.add_replica(ts, rank)  # a duplicate run (e.g. a steal that raced)
            else:
                dispatch.free(rank, ev.key)  # cancelled, forgotten, or no longer scheduled
            return
        fn = ts.spec.fn_name
        durations = self.durations
        durations[fn] = policy.ema(durations.get(fn), ev.duration)
        # from another rank than planned (a raced steal): the planned rank drops its copy
        dispatch.leave(ts, drop=ts.processing_on != rank)
        ts.nbytes = int(ev.nbytes)
        self._transition(ts, MEMORY)
        dispatch.add_replica(ts, rank)
        if ts.wanted:
            self._out.append(_new(Memory, (ts.key, None)))
        if ts.dependents:
            self._data_arrived(ts)

    def _on_failed(self, ev: Failed) -> None:
        if ev.fetched and ev.rank in self._live:  # copies other tasks queued there may need
            self._dispatch.fetched(ev.rank, ev.fetched)
        if self._workers.cancelling:
            self._dispatch.cancelled_ended(ev.rank, ev.key)
        ts = self._tasks.get(ev.key)
        if ts is None or ts.state != PROCESSING or ts.processing_on != ev.rank:
            return  # stale: the task moved on (cancelled, stolen, re-placed)
        self._dispatch.leave(ts, drop=False)
        if ev.infrastructure:  # a dead peer's fault, not the task's: its retries are kept
            self._transition(ts, READY)
            self._place(ts)
            return
        if ts.retries_left > 0:
            ts.retries_left -= 1
            ts.failed_on = ts.failed_on | {ev.rank}
            self._transition(ts, READY)
            self._place(ts)
            return
        self._err(ts, ev.error)

    def _on_release(self, ev: Release) -> None:
        for key in ev.keys:
            ts = self._tasks.get(key)
            if ts is not None:
                ts.wanted = False
                self._settling.mark(key)

    def _on_cancel(self, ev: Cancel) -> None:
        stack = [k for k in ev.keys if k in self._tasks]
        while stack:
            ts = self._tasks[stack.pop()]
            if ts.state not in PENDING and ts.state != RELEASED:
                continue  # finished keys stay as they are
            self._dispatch.cancel(ts)
            self._transition(ts, CANCELLED)
            ts.waiting_on.clear()
            if ts.wanted:
                self._out.append(Cancelled(ts.key))
            stack.extend(d for d in ts.dependents if self._tasks[d].state in PENDING)

    def _on_steal_reply(self, ev: StealReply) -> None:
        dispatch = self._dispatch
        if ev.ok and self._workers.cancelling:
            dispatch.cancelled_ended(ev.rank, ev.key)  # a cancelled task dropped unstarted: never ran there
        entry = dispatch.steal_answered(ev.key, ev.rank)
        if entry is None or not ev.ok:
            return  # the task already left the victim (nothing was planned on this reply), or runs there
        ts, thief = self._tasks[ev.key], entry[1]
        dispatch.leave(ts, drop=False)
        self._transition(ts, READY)
        if thief is not None and thief in placement.candidates(ts, self._workers):
            self._transition(ts, PROCESSING)
            dispatch.assign(ts, thief)
        else:
            self._place(ts)

    def _on_rank_lost(self, ev: RankLost) -> None:
        # only this event notes its transitions (an instance attribute hides the method): Recovered names them
        moves: list[tuple[str, str, str]] = []

        def noted(ts: TaskRecord, to: str) -> None:
            moves.append((ts.key, ts.state, to))
            SchedulerState._transition(self, ts, to)

        self._transition = noted
        try:
            cost = self._recovery.rank_lost(ev, moves)
        finally:
            del self._transition
        if cost is not None:
            self._out.append(cost)

    def _place(self, ts: TaskRecord) -> None:
        """Put a ready task on a worker, or err it if no worker may run it."""
        rank, error = self._dispatch.choose(ts)
        if error is None:
            self._transition(ts, PROCESSING)
            self._dispatch.assign(ts, rank)
        else:
            self._err(ts, error)

    def _activate(self, roots: Iterable[str]) -> None:
        """Schedule released tasks in ``roots`` and the released dependencies they need."""
        order, cyclic = released_closure(self._tasks, roots)
        for key in order:
            ts = self._tasks[key]
            if ts.state != RELEASED:
                continue
            if not ts.spec.deps:  # nothing to check or wait for (never on a cycle)
                self._transition(ts, READY)
                self._place(ts)
                continue
            verdict, error = self._table.link(ts, cyclic)
            if verdict == ERRED:
                self._err(ts, error)
            elif verdict == CANCELLED:
                self._transition(ts, CANCELLED)
                if ts.wanted:
                    self._out.append(Cancelled(key))
            else:
                ts.waiting_on = {d for d in ts.spec.deps if self._tasks[d].state != MEMORY}
                if ts.waiting_on:
                    self._transition(ts, WAITING)
                else:
                    self._transition(ts, READY)
                    self._place(ts)

    def _err(self, ts: TaskRecord, error: object) -> None:
        """Err ``ts`` and, recursively, every dependent still pending, with the same error."""
        stack = [ts]
        while stack:
            t = stack.pop()
            if t.state in (ERRED, MEMORY) and t is not ts:
                continue
            self._dispatch.retire(t, drop=t is not ts)
            self._transition(t, ERRED)
            t.error = error
            t.waiting_on.clear()
            if t.wanted:
                self._out.append(Erred(t.key, error))
            stack.extend(self._tasks[d] for d in sorted(t.dependents) if self._tasks[d].state in PENDING)

    def _data_arrived(self, ts: TaskRecord) -> None:
        for dkey in sorted(ts.dependents):
            dts = self._tasks[dkey]
            if dts.state == WAITING and ts.key in dts.waiting_on:
                dts.waiting_on.discard(ts.key)
                if not dts.waiting_on:
                    self._transition(dts, READY)
                    self._place(dts)

    def _settle(self) -> None:
        """Free data and forget the marked keys nobody needs any more (see :func:`settling.fate`),
        until nothing changes; settling one may mark more, which are settled after it."""
        tasks, fate, dispatch = self._tasks, settling.fate, self._dispatch
        for key in self._settling.drain():
            ts = tasks.get(key)
            if ts is None or ts.wanted:
                continue
            to = fate(ts, tasks)
            if to is None:
                continue
            dispatch.retire(ts, drop=True)
            if ts.waiting_on:
                ts.waiting_on.clear()
            self._transition(ts, to)
            if to == FORGOTTEN:
                self._table.forget(key)
                if ts.spec.deps:
                    self._settling.mark_all(self._table.unlink(ts))
        if self._table.shrink_due():
            self._table.shrink()
            self._settling.shrink()
            self._workers.shrink()

    def table_sizes(self) -> dict[str, int]:
        """Return the number of entries of every per-key table (a diagnostic: all are O(live keys)
        but the transition log, which is bounded by :data:`LOG_MAX`); per-rank ones summed over the ranks."""
        return {
            "tasks": len(self._tasks), **self._workers.table_sizes(), "dirty": len(self._settling),
            "forgotten": self._table.forgotten_count(), "frees": self._dispatch.outbox.pending_frees(),
            "durations": len(self.durations), "log": len(self.log),
        }

    # ------------------------------------------------------------------ transitions and checks

    def _transition(self, ts: TaskRecord, to: str) -> None:
        state = ts.state
        if to not in NEXT_STATES[state]:
            raise self.log.illegal(ts.key, state, to, self._stimulus)
        self.log.append((self._now, ts.key, state, to, self._stimulus))
        ts.state = to
        # a wanted key is never settled and its dependencies are marked only if it has some
        if to != FORGOTTEN and (ts.spec.deps or not ts.wanted):
            self._mark_transition(ts)

    def validate(self) -> None:
        """Check every invariant of the state.

        Raises:
            AssertionError: Naming the broken invariant and the keys or ranks involved.
        """
        check_invariants(self)


_HANDLERS = {
    Submit: SchedulerState._on_submit,
    Scatter: SchedulerState._on_scatter,
    Finished: SchedulerState._on_finished,
    Failed: SchedulerState._on_failed,
    Release: SchedulerState._on_release,
    Cancel: SchedulerState._on_cancel,
    StealReply: SchedulerState._on_steal_reply,
    RankLost: SchedulerState._on_rank_lost,
}


def _steps(events: Iterable[object]) -> list[tuple[object, object]]:
    """Pair each event with its handler (checking every event before any is applied)."""
    steps = [(_HANDLERS.get(type(event)), event) for event in events]
    for event in (event for handler, event in steps if handler is None):
        raise TypeError(f"SchedulerState.handle: unknown event type {type(event).__name__}")
    return steps
