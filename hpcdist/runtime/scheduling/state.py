"""The scheduler's task state machine: events in, instructions out, no I/O.

:meth:`SchedulerState.handle` (one event) and :meth:`SchedulerState.handle_many` (a batch, e.g.
every result of one worker message) are the only ways the state changes. Time arrives only inside
events; every transition is appended to :attr:`SchedulerState.log` (the most recent
:data:`LOG_MAX` are kept), which becomes the run's trace.

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
are named tuples, one class per kind; see :data:`INSTRUCTIONS`.

The state owns a :class:`~hpcdist.runtime.scheduling.workers.WorkerTable` (per-worker records,
holdings, steals: written only through its methods), the task records
(:mod:`~hpcdist.runtime.scheduling.tasks`) and an :class:`~hpcdist.runtime.scheduling.outbox.Outbox`;
placement and stealing decisions come from :mod:`~hpcdist.runtime.scheduling.placement`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

from hpcdist.errors import DependencyMissing, InvalidTransition, WorkerLost
from hpcdist.runtime.scheduling import placement, policy
from hpcdist.runtime.scheduling.check import check_invariants
from hpcdist.runtime.scheduling.outbox import Outbox
from hpcdist.runtime.scheduling.tables import shrink
from hpcdist.runtime.scheduling.tasks import NO_RANKS, NbytesView, TaskRecord, released_closure
from hpcdist.runtime.scheduling.workers import WorkerTable
# The vocabulary lives in vocabulary.py; these names are re-exported here (callers use state.X).
from hpcdist.runtime.scheduling.vocabulary import (  # noqa: F401
    ALLOWED_TRANSITIONS, CANCELLED, ERRED, FORGOTTEN, INSTRUCTIONS, MEMORY, NEXT_STATES, PENDING, PROCESSING,
    READY, RELEASED, RETAINING, WAITING, Cancel, Failed, Finished, Release,
    Scatter, StealReply, Submit, TaskSpec, RankLost, Cancelled, Compute, Erred, Instruction, Memory, Steal,
    Stimulus, stimulus_name,
)

__all__ = [
    "ALLOWED_TRANSITIONS", "Cancel", "DependencyMissing", "Failed", "Finished", "INSTRUCTIONS", "InvalidTransition",
    "LOG_MAX", "Release", "Scatter", "SchedulerState", "StealReply", "Submit", "TaskSpec", "RankLost",
]


#: Most recent transitions kept in :attr:`SchedulerState.log` (older ones are dropped): a few
#: thousand tasks' worth, for the history in error messages, and ~2 MB whatever the run's size.
LOG_MAX = 10_000
#: the per-key tables are checked for shrinking after this many keys were forgotten
SHRINK_EVERY = 1024

_new = tuple.__new__  # builds a per-task instruction without its class's Python-level __new__


class SchedulerState:
    """All task and worker bookkeeping of the scheduler (rank 0).

    Args:
        workers: Rank -> host name of every worker.

    Attributes:
        log: ``(time, key, from_state, to_state, stimulus_id)`` of the most recent :data:`LOG_MAX`
            transitions (``stimulus_id`` is the causing event's, see :meth:`story`),
            oldest first (a bounded deque: older transitions are dropped, so a long run's log
            does not grow without end; :meth:`history` and :meth:`validate` see what is kept).
        durations: Function name -> running average (EMA) of its task durations in seconds.
    """

    def __init__(self, workers: dict[int, str]) -> None:
        self.log: deque[tuple[float, str, str, str, Stimulus]] = deque(maxlen=LOG_MAX)
        self.durations: dict[str, float] = {}
        self._tasks: dict[str, TaskRecord] = {}
        self._workers = WorkerTable(workers)
        self._nbytes = NbytesView(self._tasks)
        self._forgotten: list[str] = []
        # per handle_many() call
        self._now = 0.0
        self._stimulus: Stimulus = ""
        self._outbox = Outbox()
        self._out: list[Instruction] = self._outbox.out  # the outbox's list of the current call
        # keys whose data or record may no longer be needed: FIFO without duplicates (a set for
        # membership and a list read from an index; popping a dict's first key is quadratic)
        self._dirty: set[str] = set()
        self._dirty_order: list[str] = []
        self._rebalance = False
        self._forgets = 0  # keys forgotten since the tables were last checked for shrinking

    # ------------------------------------------------------------------ queries

    @property
    def workers(self) -> dict[int, str]:
        """Rank -> host name of the live workers."""
        return dict(self._workers.hosts)

    @property
    def worker_table(self) -> WorkerTable:
        """The per-worker records (read them; only this state changes them)."""
        return self._workers

    def task(self, key: str) -> TaskRecord | None:
        """Return the record of ``key`` (read it; only this state changes it), or None if unknown."""
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
        holders = self._workers.holders
        if keys is None:
            keys = holders
        return {k: sorted(holders.get(k, ())) for k in keys}

    def has_what(self) -> dict[int, list[str]]:
        """Return rank -> sorted keys it holds, for every live worker."""
        return {rec.rank: sorted(rec.has_what) for rec in self._workers.records()}

    def processing_on(self, rank: int) -> list[str]:
        """Return the keys assigned to ``rank``, in assignment (execution) order."""
        return list(self._workers[rank].processing) if rank in self._workers else []

    def occupancy(self, rank: int) -> float:
        """Return the expected seconds of work queued on ``rank``, steals in flight included."""
        return self._workers.occupancy(rank)

    def expected_duration(self, fn_name: str) -> float:
        """Return the expected duration of a task of function ``fn_name``."""
        return self.durations.get(fn_name, policy.DEFAULT_DURATION)

    def unfinished_wanted(self) -> list[str]:
        """Keys a client Future waits for that are not in memory, erred or cancelled yet."""
        final = (MEMORY, ERRED, CANCELLED)
        return [k for k, ts in self._tasks.items() if ts.wanted and ts.state not in final]

    def settling(self) -> list[str]:
        """Keys marked to be checked for freeing or forgetting (empty outside :meth:`handle`)."""
        return list(self._dirty_order) or sorted(self._dirty)

    def pop_forgotten(self) -> list[str]:
        """Return the keys forgotten since the last call (e.g. to drop their payloads), in order."""
        out, self._forgotten = self._forgotten, []
        return out

    def history(self, key: str) -> list[tuple[float, str, str]]:
        """Return ``(time, from_state, to_state)`` of the transitions of ``key`` still in the log."""
        return [(t, a, b) for t, k, a, b, _ in self.log if k == key]

    def story(self, key: str) -> list[tuple[float, str, str, str]]:
        """Return ``(time, from_state, to_state, cause)`` of the transitions of ``key`` still in the
        log; ``cause`` names the message that caused each (see :func:`stimulus_name`)."""
        return [(t, a, b, stimulus_name(c)) for t, k, a, b, c in self.log if k == key]

    # ------------------------------------------------------------------ events

    def handle(self, event: object) -> list[Instruction]:
        """Apply one event and return the instructions it produces.

        Raises:
            InvalidTransition: If the event would move a task along an illegal transition.
            TypeError: If ``event`` is not one of this module's event types.
        """
        handler = _HANDLERS.get(type(event))
        if handler is None:
            raise TypeError(f"SchedulerState.handle: unknown event type {type(event).__name__}")
        return self._apply(((handler, event),))

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
        steps = [(_HANDLERS.get(type(event)), event) for event in events]
        for handler, event in steps:
            if handler is None:
                raise TypeError(f"SchedulerState.handle: unknown event type {type(event).__name__}")
        return self._apply(steps)

    def _apply(self, steps: Sequence[tuple[object, object]]) -> list[Instruction]:
        outbox = self._outbox
        self._out = outbox.out
        self._rebalance = False
        for handler, event in steps:
            self._now = event.time
            self._stimulus = event.stimulus_id
            handler(self, event)
            if self._dirty_order:
                self._settle()
            outbox.end_event()
        if self._rebalance:
            self._balance()
        self._stimulus = ""
        out = outbox.take()
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
                self._unlink(ts)
                self._transition(ts, RELEASED)
                ts.spec, ts.error, ts.failed_on = spec, None, NO_RANKS
            else:
                ts = self._new_task(spec)
            ts.wanted, ts.runnable, ts.retries_left = True, True, spec.retries
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
                    self._add_replica(ts, r)
                self._out.append(_new(Memory, (ts.key, None)))
                return
            for r in ranks:
                self._free(r, ts.key)
            if ts.state == ERRED:
                self._out.append(Erred(ts.key, ts.error))
            return
        if ts is None:
            ts = self._new_task(TaskSpec(ev.key))
            ts.runnable = False
        elif ts.state == CANCELLED:
            self._unlink(ts)
            self._transition(ts, RELEASED)
            ts.spec, ts.error, ts.runnable = TaskSpec(ev.key), None, False
        ts.wanted = True
        if not ranks:
            self._err(
                ts,
                WorkerLost(
                    f"key {ev.key!r} was scattered to ranks {list(ev.ranks)}, none of which is alive"
                ),
            )
            return
        ts.nbytes = int(ev.nbytes)
        self._transition(ts, MEMORY)
        for r in ranks:
            self._add_replica(ts, r)
        self._out.append(_new(Memory, (ts.key, None)))
        self._data_arrived(ts)

    def _on_finished(self, ev: Finished) -> None:
        rank = ev.rank
        if rank not in self._workers:
            return  # a message from a worker declared lost: its data is gone with it
        if self._workers.any_cancelled():
            self._cancelled_ended(rank, ev.key)
        tasks = self._tasks
        for dep in ev.fetched:
            dts = tasks.get(dep)
            if dts is not None and dts.state == MEMORY:
                self._add_replica(dts, rank)
            else:
                self._free(rank, dep)
        ts = tasks.get(ev.key)
        state = ts.state if ts is not None else None
        if state != PROCESSING:
            if state == MEMORY:
                self._add_replica(ts, rank)  # a duplicate run (e.g. a steal that raced)
            else:
                self._free(rank, ev.key)  # cancelled, forgotten, or no longer scheduled
            return
        fn = ts.spec.fn_name
        durations = self.durations
        durations[fn] = policy.ema(durations.get(fn), ev.duration)
        # from another rank than planned (a raced steal): the planned rank drops its copy
        self._leave_worker(ts, drop=ts.processing_on != rank)
        ts.nbytes = int(ev.nbytes)
        self._transition(ts, MEMORY)
        self._add_replica(ts, rank)
        if ts.wanted:
            self._out.append(_new(Memory, (ts.key, None)))
        if ts.dependents:
            self._data_arrived(ts)

    def _on_failed(self, ev: Failed) -> None:
        if self._workers.any_cancelled():
            self._cancelled_ended(ev.rank, ev.key)
        ts = self._tasks.get(ev.key)
        if ts is None or ts.state != PROCESSING or ts.processing_on != ev.rank:
            return  # stale: the task moved on (cancelled, stolen, re-placed)
        self._leave_worker(ts, drop=False)
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
                self._mark(key)

    def _on_cancel(self, ev: Cancel) -> None:
        stack = [k for k in ev.keys if k in self._tasks]
        while stack:
            ts = self._tasks[stack.pop()]
            if ts.state not in PENDING and ts.state != RELEASED:
                continue  # finished keys stay as they are
            if ts.processing_on is not None:
                # it may be running there: that worker stays busy until it reports the end
                self._workers.cancel_running(ts.processing_on, ts.key, ts.expected)
            self._leave_worker(ts, drop=True)
            self._transition(ts, CANCELLED)
            ts.waiting_on.clear()
            if ts.wanted:
                self._out.append(Cancelled(ts.key))
            stack.extend(d for d in ts.dependents if self._tasks[d].state in PENDING)

    def _cancelled_ended(self, rank: int, key: str) -> None:
        """``rank`` no longer runs cancelled ``key`` (it reported the end, or dropped it unstarted)."""
        if self._workers.cancelled_ended(rank, key):
            self._rebalance = True  # it is free now: it may take work from others

    # ------------------------------------------------------------------ placement and stealing

    def _on_steal_reply(self, ev: StealReply) -> None:
        workers = self._workers
        if ev.ok and workers.any_cancelled():
            self._cancelled_ended(ev.rank, ev.key)  # a cancelled task dropped unstarted: never ran there
        entry = workers.steal_of(ev.key)
        if entry is None or entry[0] != ev.rank:
            return  # the task already left the victim; nothing was planned on this reply
        workers.end_steal(ev.key)
        ts = self._tasks[ev.key]
        self._rebalance = True
        if not ev.ok:
            return  # it runs (or ran) on the victim
        thief = entry[1]
        self._leave_worker(ts, drop=False)
        self._transition(ts, READY)
        if thief is not None and thief in placement.candidates(ts, self._workers):
            self._assign(ts, thief)
        else:
            self._place(ts)

    def _on_rank_lost(self, ev: RankLost) -> None:
        rank = ev.rank
        if rank not in self._workers:
            return
        self._rebalance = True
        orphans = [self._tasks[k] for k in self._workers[rank].processing]
        for ts in orphans:
            self._leave_worker(ts, drop=False)
        _, lost = self._workers.remove(rank)
        self._outbox.drop_rank(rank)
        roots = [ts.key for ts in orphans]
        for ts in orphans:
            self._transition(ts, RELEASED)
        for key in lost:
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

    def _add_replica(self, ts: TaskRecord, rank: int) -> None:
        self._workers.add_replica(rank, ts.key)
        self._outbox.unfree(rank, ts.key)

    def _drop_data(self, ts: TaskRecord) -> None:
        key = ts.key
        for rank in self._workers.drop_replicas(key):
            self._free(rank, key)

    def _free(self, rank: int, key: str) -> None:
        if rank in self._workers:
            self._outbox.free(rank, key)

    def _place(self, ts: TaskRecord) -> None:
        """Put a ready task on a worker, or err it if no worker may run it."""
        spec = ts.spec
        workers = self._workers
        if not spec.deps and spec.workers is None and not ts.failed_on and workers.ranks:
            # policy.decide_worker without bytes to move: least occupied, then lowest rank
            self._assign(ts, workers.least_occupied())
            return
        rank, error = placement.choose_worker(ts, workers, self._nbytes)
        if error is None:
            self._assign(ts, rank)
        else:
            self._err(ts, error)

    def _assign(self, ts: TaskRecord, rank: int) -> None:
        self._transition(ts, PROCESSING)
        key = ts.key
        ts.processing_on = rank
        ts.expected = expected = self.durations.get(ts.spec.fn_name, policy.DEFAULT_DURATION)
        workers = self._workers
        workers.assign(rank, key, expected)
        self._rebalance = True
        where = {}
        if ts.spec.deps:
            holders, host_of = workers.holders, workers.hosts.get
            for dep in ts.spec.deps:
                where[dep] = policy.holder_order(holders.get(dep, ()), rank, host_of)
        self._outbox.unfree(rank, key)
        self._out.append(_new(Compute, (rank, key, where)))

    def _leave_worker(self, ts: TaskRecord, drop: bool) -> None:
        """Take a processing task off its worker; ``drop`` asks the worker to discard it."""
        rank = ts.processing_on
        if rank is None:
            return
        if self._workers.unassign(rank, ts.key, ts.expected):
            self._rebalance = True
        ts.processing_on = None
        ts.expected = 0.0
        if drop:
            self._out.append(Steal(rank, ts.key))

    def _balance(self) -> None:
        workers, tasks = self._workers, self._tasks
        for thief, victim, key in placement.steal_plan(workers, tasks, self.durations, self._nbytes):
            workers.start_steal(key, victim, thief, tasks[key].expected)
            self._out.append(Steal(victim, key))

    # ------------------------------------------------------------------ scheduling

    def _new_task(self, spec: TaskSpec) -> TaskRecord:
        ts = TaskRecord(spec)
        self._tasks[spec.key] = ts
        self._transition(ts, RELEASED)
        return ts

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
            missing = erred = cancelled = None
            for dep in ts.spec.deps:
                dts = self._tasks.get(dep)
                if dts is not None:
                    dts.dependents.add(key)  # (re)link: the dep may have been forgotten and resubmitted
                if dts is None or dts.state == RELEASED or dep in cyclic:
                    missing = missing or dep
                elif dts.state == ERRED:
                    erred = erred or dts
                elif dts.state == CANCELLED:
                    cancelled = cancelled or dep
            if key in cyclic:
                self._err(
                    ts, DependencyMissing(f"task {key!r} depends on itself through a cycle of dependencies")
                )
            elif missing is not None:
                self._err(
                    ts,
                    DependencyMissing(
                        f"task {key!r} depends on {missing!r}, which the scheduler does not have (never"
                        " submitted, released, or scattered data that was lost); submit it with the task"
                        " or keep a Future to it"
                    ),
                )
            elif erred is not None:
                self._err(ts, erred.error)
            elif cancelled is not None:
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
            self._leave_worker(t, drop=t is not ts)
            if t.state == MEMORY:
                self._drop_data(t)
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

    def _unlink(self, ts: TaskRecord) -> None:
        for dep in ts.spec.deps:
            if dep in self._tasks:
                self._tasks[dep].dependents.discard(ts.key)
                self._mark(dep)

    # ------------------------------------------------------------------ memory management

    def _mark(self, key: str) -> None:
        if key not in self._dirty:
            self._dirty.add(key)
            self._dirty_order.append(key)

    def _settle(self) -> None:
        """Free data and forget keys nobody needs any more, until nothing changes.

        Marked keys are checked in the order they were first marked (a key marked again while
        it waits keeps its place); checking one may mark more, which are checked after it.
        """
        tasks, dirty, order = self._tasks, self._dirty, self._dirty_order
        i = 0
        while i < len(order):
            key = order[i]
            i += 1
            dirty.discard(key)
            ts = tasks.get(key)
            if ts is None or ts.wanted:
                continue
            state = ts.state
            pending = retaining = False
            for dkey in ts.dependents:
                dstate = tasks[dkey].state
                if dstate in PENDING:
                    pending = retaining = True
                    break
                if dstate in RETAINING:
                    retaining = True
            if pending and (state in PENDING or state == MEMORY):
                continue
            keep = ts.runnable and retaining
            if state == RELEASED and keep:
                continue
            if retaining and (state == ERRED or state == CANCELLED):
                continue
            if ts.processing_on is not None:
                self._leave_worker(ts, drop=True)
            if state == MEMORY:
                self._drop_data(ts)
            if ts.waiting_on:
                ts.waiting_on.clear()
            if keep:
                self._transition(ts, RELEASED)
            else:
                self._transition(ts, FORGOTTEN)
                del tasks[key]
                self._forgotten.append(key)
                self._forgets += 1
                if ts.spec.deps:
                    self._unlink(ts)
        order.clear()
        if self._forgets >= SHRINK_EVERY:
            self._shrink()

    def _shrink(self) -> None:
        """Rebuild the per-key tables that fell far below their peak size (dicts never shrink)."""
        self._forgets = 0
        for table in (self._tasks, self._dirty):
            shrink(table)
        self._workers.shrink()

    def table_sizes(self) -> dict[str, int]:
        """Return the number of entries of every per-key table (a diagnostic: all are O(live keys)
        but the transition log, which is bounded by :data:`LOG_MAX`).

        Per-rank tables are summed over the ranks.
        """
        return {
            "tasks": len(self._tasks),
            **self._workers.table_sizes(),
            "dirty": len(self._dirty) + len(self._dirty_order),
            "forgotten": len(self._forgotten),
            "frees": self._outbox.pending_frees(),
            "durations": len(self.durations),
            "log": len(self.log),
        }

    # ------------------------------------------------------------------ transitions and checks

    def _transition(self, ts: TaskRecord, to: str) -> None:
        state = ts.state
        if to not in NEXT_STATES[state]:
            steps = ", ".join(f"t={t:g} {a}->{b}" for t, a, b in self.history(ts.key)) or "none"
            cause = stimulus_name(self._stimulus) or "unnamed"
            raise InvalidTransition(
                f"task {ts.key!r}: illegal transition {state} -> {to}; its history: {steps}; caused by {cause}"
            )
        key = ts.key
        self.log.append((self._now, key, state, to, self._stimulus))
        ts.state = to
        if to != FORGOTTEN:  # whether it and its deps are still needed may have changed: recheck
            dirty = self._dirty
            # _settle skips wanted keys, and a key stops being wanted only in _on_release, which marks it
            if not ts.wanted and key not in dirty:
                dirty.add(key)
                self._dirty_order.append(key)
            for dep in ts.spec.deps:
                if dep not in dirty:
                    dirty.add(dep)
                    self._dirty_order.append(dep)

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
