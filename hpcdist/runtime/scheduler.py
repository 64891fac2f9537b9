"""Rank 0's event loop: messages in, :class:`SchedulerState` events, instructions out.

The loop owns the pure :class:`~hpcdist.runtime.scheduling.state.SchedulerState`, turns every arriving message
(a dead worker's LOST too) into an event, and every instruction the state returns into a send to a worker
or a notification of the client. Task payloads (function and arguments) wait here until their task has run.

Two kinds of thread take turns at running it (leader/follower): a client thread that waits for a result runs
the rounds itself (:meth:`Scheduler.drive`), so the result reaches it without a hand-off between threads; the
scheduler thread (:meth:`Scheduler.run`) runs them whenever no client thread has for :data:`TAKEOVER_S`.
"""

from __future__ import annotations

import itertools
import sys
import time
import traceback
from collections import defaultdict, deque
from typing import Any, Callable

from hpcdist.errors import HpcdistError, TransportError, WorkerLost
from hpcdist.runtime import losses, messages as m, tracing
from hpcdist.runtime.baton import Baton
from hpcdist.runtime.frees import Frees
from hpcdist.runtime.log import get_logger
from hpcdist.runtime.pushes import Pushes
from hpcdist.runtime.requests import Gathers, Shutdown
from hpcdist.runtime.scheduling import state as st
from hpcdist.runtime.scheduling.tables import shrink
from hpcdist.runtime.scheduling.tasks import SHRINK_EVERY
from hpcdist.runtime.scheduling.vocabulary import (
    PROCESSING, Cancel, Compute, Erred, Failed, Finished, Free, Memory, RankLost, Release, Scatter, Steal, StealReply,
    Submit,
)

logger = get_logger(__name__)

_new = tuple.__new__  # builds a per-task instruction without its class's Python-level __new__
#: numbers the messages that cause state events: an event's stimulus_id is (kind, source rank, number)
_stimuli = itertools.count(1)
#: seconds the shutdown waits for every worker's goodbye
SHUTDOWN_GRACE = 2.0
#: an idle scheduler looks for client doorbells this often (seconds)
DOORBELL_POLL = 0.005
#: the scheduler thread runs the loop once no client thread has for this long (seconds)
TAKEOVER_S = 1e-3
#: the methods a QUERY message may ask for
QUERIES = frozenset({"who_has", "has_what", "running_keys", "table_sizes"})


class Scheduler:
    """Rank 0's scheduler over a transport.

    Args:
        transport: rank 0's endpoint.
        notify: called in the scheduler thread with each client-facing instruction
            (:class:`~hpcdist.runtime.scheduling.vocabulary.Memory`, ``Erred`` or ``Cancelled``).
    """

    def __init__(self, transport: Any, notify: Callable[[tuple], None]) -> None:
        self.transport = transport
        self.notify = notify
        self.worker_ranks = list(range(1, transport.size))
        self.info: dict[int, dict] = {}  # the live workers' hellos
        self.lost: dict[int, tuple[str, float]] = {}  # rank -> (reason, time.time()) of the dead workers
        self.recoveries: list[losses.WorkerLoss] = []  # what each loss cost, in order
        self.state: st.SchedulerState | None = None
        self.payloads: dict[str, tuple] = {}  # key -> (fn_id, fn_bytes, data, buffers)
        # key -> pickle of a small result, sent with its DONE: rank 0's one copy, kept until the
        # key is forgotten (a later future of the key gets it with its "memory" note)
        self.small: dict[str, bytes] = {}
        self.fn_sent: dict[int, set[str]] = defaultdict(set)
        self.gathers = Gathers(transport.send)
        self.scatter_rr = itertools.cycle(self.worker_ranks)
        #: (messages the client had sent then, take): keys whose futures are gone; see ring()
        self.doorbells: deque[tuple[int, Callable[[], list]]] = deque()
        self.sent = 0  # messages the client has sent to this scheduler (loopback) ...
        self._handled = 0  # ... and how many of them were handled
        self.closing: Shutdown | None = None
        # who runs the loop: the scheduler thread, or a client thread that waits (drive); no
        # wake-up when a client thread stops driving: it is usually back within microseconds,
        # and waking the scheduler thread each time cost the GIL back and forth
        self._baton = Baton(lambda: transport.interrupt(), TAKEOVER_S, wake_background=False, held=False)
        self.failed: BaseException | None = None
        self._compute: dict[int, tuple[list, list]] = {}
        self.trace, self._flush, self._send_computes = tracing.scheduler_hooks(  # trace None: the methods as they are
            transport, self._flush, self._send_computes, self._compute)
        self._notes: list[tuple] = []  # client-facing instructions, delivered once sends are out
        self.pushes = Pushes(transport.send, transport.host_of)
        self.frees = Frees(transport.send)
        #: payload bytes rank 0 received from / sent to workers (task arguments, scatters, gathers)
        self.bytes_in = 0
        self.bytes_out = 0
        #: STEAL messages sent (work stealing, and queued tasks dropped because released)
        self.steals_sent = 0
        self.path_sent: dict[int, list[str]] = {}
        self._path_update: set[int] = set()
        self._forgets = 0  # keys forgotten since payloads, small, pushes were checked for shrinking

    # ---- loop --------------------------------------------------------------------------------

    def wait_for_workers(self, timeout: float, allowed_failures: int = st.recovery.DEFAULT_ALLOWED_FAILURES) -> None:
        """Block until every worker said hello or was lost (left out; the rest get PEER_DOWN); else TimeoutError."""
        deadline = time.monotonic() + timeout
        pending: list[tuple] = []
        while set(self.worker_ranks) - set(self.info):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"workers {sorted(set(self.worker_ranks) - set(self.info))} did not start within "
                                   f"{timeout:g} s")
            item = self.transport.recv(min(left, 0.5))
            if item is None:
                continue
            src, header, buffers = item
            if header[0] == m.HELLO and src in self.worker_ranks:
                self.info[src] = header[1]
            elif header[0] == m.LOST and src in self.worker_ranks:  # died before the start: the others go on
                self._drop(src, header[1], self.info.get(src))
                if not self.worker_ranks:
                    raise WorkerLost(f"every worker was lost before it started (the last: {header[1]})")
            elif header[0] != m.LOST and src in self.worker_ranks:
                pending.append(item)
        self.state = st.SchedulerState({r: self.info[r]["host"] for r in self.worker_ranks}, allowed_failures)
        losses.tell_of_losses(self.transport.send, self.worker_ranks, self.lost)
        for item in (item for item in pending if item[0] in self.worker_ranks):
            self._dispatch(*item)

    @property
    def stopped(self) -> bool:
        """Whether the loop has stopped for good (shut down, or crashed)."""
        return self._baton.stopped

    def run(self) -> None:
        """Run the loop whenever no client thread does, until the workers are shut down (scheduler thread)."""
        baton = self._baton
        while baton.await_turn():
            with baton.lead:
                while not baton.stopped and not baton.wanted:
                    self._round(DOORBELL_POLL)  # doorbells come without a message: look now and then

    def drive(self, done: Callable[[], bool], timeout: float | None,
              interrupted: Callable[[], bool] = lambda: False) -> bool:
        """Run the loop in the calling client thread until ``done()``, ``timeout`` s or ``interrupted()``.

        Returns:
            False at once if another client thread drives (then wait the usual way).
        """
        baton = self._baton
        if not baton.take():
            return False
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not done() and not baton.stopped and not interrupted():
                wait = DOORBELL_POLL
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        break
                self._round(wait)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - as in the scheduler thread
            self.crash(exc)
        finally:
            baton.give()
        return True

    def _round(self, wait: float) -> None:
        """Receive for up to ``wait`` s, handle what came, send, notify the client."""
        if self.closing is not None:
            wait = min(wait, max(0.0, self.closing.deadline - time.monotonic()))
        item = self.transport.recv(wait)
        if item is not None:
            self._dispatch(*item)
            # Drain what is already waiting before sending, so tasks go out in batches.
            for _ in range(1000):
                item = self.transport.recv(0)
                if item is None:
                    break
                self._dispatch(*item)
        self._flush()
        self._deliver()
        if self.gathers.parked:  # only after a worker died
            self.gathers.retry(self.small, self.state)
        if self.doorbells and self.ring():
            self._flush()
            self._deliver()
        if self.closing is not None and time.monotonic() >= self.closing.deadline:
            self._finish_close(timed_out=True)

    def _send(self, rank: int, header: tuple, buffers: list | tuple = ()) -> None:
        if buffers:
            self.bytes_out += sum(memoryview(b).nbytes for b in buffers)
        self.transport.send(rank, header, buffers)

    def doorbell(self, take: Callable[[], list]) -> None:
        """Ring ``take`` (it hands over released keys) once every message the client has sent so far was handled."""
        self.doorbells.append((self.sent, take))

    def ring(self) -> bool:
        """Release the keys of every doorbell whose preceding messages have all been handled.

        Rung after a round's sends and notifications, so a release never delays the next
        task. True if any key was released.
        """
        doorbells, keys = self.doorbells, []
        while doorbells and doorbells[0][0] <= self._handled:
            keys.extend(doorbells.popleft()[1]())
        if keys:
            self._handle(Release(time.monotonic(), tuple(keys), stimulus_id=("doorbell", next(_stimuli))))
        return bool(keys)

    def _dispatch(self, src: int, header: tuple, buffers: list) -> None:
        if src == self.transport.rank:
            self._handled += 1
        elif buffers:
            self.bytes_in += sum(memoryview(b).nbytes for b in buffers)
        kind = header[0]
        handler = getattr(self, "_on_" + kind.replace("-", "_"))
        handler(src, header, buffers)

    def _handle(self, *events: Any) -> None:
        """Apply events to the state as one step and carry out its instructions."""
        small = self.small
        for ins in self.state.handle_many(events):
            kind = ins.__class__
            if kind is Compute:
                self._queue_compute(ins.rank, ins.key, ins.deps)
            elif kind is Free:
                self.frees.add(ins.rank, ins.keys)
            elif kind is Steal:
                if ins.rank in self._compute:  # a COMPUTE of this round first, or the steal misses it
                    self._send_computes(ins.rank)
                self.steals_sent += 1
                self.transport.send(ins.rank, (m.STEAL, ins.key))
            elif kind is Memory and ins.key in small:
                self._notes.append(_new(Memory, (ins.key, small[ins.key])))  # result() needs no round trip
            else:
                self._notes.append(ins)
        forgotten = self.state.pop_forgotten()
        if forgotten:
            payloads, small = self.payloads, self.small
            for key in forgotten:
                payloads.pop(key, None)
                small.pop(key, None)
            self.pushes.forget(forgotten)
            self._forgets += len(forgotten)
            if self._forgets >= SHRINK_EVERY:
                self._forgets = 0
                shrink(payloads)
                shrink(small)
                self.pushes.shrink()

    def _queue_compute(self, rank: int, key: str, deps: dict) -> None:
        fn_id, fn_bytes, data, buffers = self.payloads[key]
        if deps:
            deps = self.pushes.deps(rank, deps)
        sent = self.fn_sent[rank]
        if fn_id in sent:
            fn_bytes = None
        else:
            sent.add(fn_id)
        entries, bufs = self._compute.setdefault(rank, ([], []))
        if fn_bytes is not None and self.path_sent.get(rank) != sys.path:
            # A function pickled by reference needs its module: share rank 0's import path.
            self.path_sent[rank] = list(sys.path)
            self._path_update.add(rank)
        entries.append((key, fn_id, fn_bytes, data, len(buffers), deps))
        bufs.extend(buffers)

    def _deliver(self) -> None:
        # Last in a round: a driver woken here finds this thread about to wait (GIL free), not
        # still draining messages and posting sends, which held the GIL for ~35 µs per wake-up.
        notes, self._notes = self._notes, []
        for i, ins in enumerate(notes):
            try:
                self.notify(ins)
            except BaseException:
                self._notes = notes[i:] + self._notes  # undelivered: fail_all fails their futures
                raise

    def _flush(self) -> None:
        frees = self.frees
        frees.send_due()  # then each COMPUTE carries its rank's frees still pending
        for rank in list(self._compute):
            self._send_computes(rank)
        self.pushes.send()

    def _send_computes(self, rank: int) -> None:
        entries, bufs = self._compute.pop(rank)
        path = self.path_sent[rank] if rank in self._path_update else None
        self._path_update.discard(rank)
        self._send(rank, (m.COMPUTE, entries, path, self.frees.take(rank)), bufs)

    def table_sizes(self) -> dict[str, int]:
        """Entries of every per-key table on rank 0 (loop thread; a diagnostic): the state's (see
        :meth:`SchedulerState.table_sizes`) and, prefixed ``scheduler.``, the scheduler's own; all O(live keys)."""
        sizes = dict(self.state.table_sizes()) if self.state is not None else {}
        pushes = self.pushes.sizes()
        sizes.update({
            "scheduler.payloads": len(self.payloads), "scheduler.small": len(self.small),
            "scheduler.pushed": pushes["pushed"], "scheduler.gathers": len(self.gathers),
            "scheduler.doorbells": len(self.doorbells), "scheduler.frees": len(self.frees),
            "scheduler.computes": sum(len(e) for e, _ in self._compute.values()),
            "scheduler.pushes": pushes["pushes"], "scheduler.notes": len(self._notes),
        })
        return sizes

    def counters(self) -> dict[str, int]:
        """Rank 0's traffic so far (a snapshot any thread may take; a diagnostic): ``bytes_in``/``bytes_out``
        (payload bytes from / to workers: task arguments, scatters, gathers), ``steals_sent`` (STEAL messages)."""
        return {"bytes_in": self.bytes_in, "bytes_out": self.bytes_out, "steals_sent": self.steals_sent}

    # ---- queries: answered in the loop thread (QUERY) ----------------------------------------------

    def who_has(self, keys: list[str] | None = None) -> dict[str, list[int]]:
        """Key -> the ranks holding it, for ``keys`` (default: every key held)."""
        return self.state.who_has(keys)

    def has_what(self) -> dict[int, list[str]]:
        """Rank -> the keys it holds."""
        return self.state.has_what()

    def running_keys(self) -> set[str]:
        """The key each worker runs now, as far as rank 0 knows (the first assigned: they run in that order)."""
        state = self.state
        return {keys[0] for keys in map(state.processing_on, state.workers) if keys}

    # ---- from the client (loopback) -------------------------------------------------------------

    def loopback(self, header: tuple) -> None:
        """Send a client message to this scheduler (one sending thread at a time), counted for the doorbells."""
        self.sent += 1
        try:
            self.transport.send(self.transport.rank, header)
        except BaseException:
            self.sent -= 1
            raise

    def _on_submit(self, src: int, header: tuple, buffers: list) -> None:
        specs = []
        for spec, fn_id, fn_bytes, data, bufs in header[1]:
            # Kept until the state forgets the key: a released input may have to be recomputed.
            self.payloads.setdefault(spec.key, (fn_id, fn_bytes, data, bufs))
            specs.append(spec)
        self._handle(Submit(time.monotonic(), tuple(specs), stimulus_id=(m.SUBMIT, src, next(_stimuli))))

    def _on_scatter(self, src: int, header: tuple, buffers: list) -> None:
        for key, ranks, data, bufs in header[1]:
            ranks = tuple(ranks) if ranks else (next(self.scatter_rr),)
            for rank in ranks:
                self._send(rank, (m.PUT, key, data, len(bufs)), bufs)
            nbytes = len(data) + sum(memoryview(b).nbytes for b in bufs)
            self._handle(Scatter(time.monotonic(), key, ranks, nbytes, stimulus_id=(m.SCATTER, src, next(_stimuli))))

    def _on_cancel(self, src: int, header: tuple, buffers: list) -> None:
        self._handle(Cancel(time.monotonic(), tuple(header[1]), stimulus_id=(m.CANCEL, src, next(_stimuli))))

    def _on_gather(self, src: int, header: tuple, buffers: list) -> None:
        self.gathers.start(header[1], header[2], self.small, self.state)

    def _on_query(self, src: int, header: tuple, buffers: list) -> None:
        _, name, args, cfuture = header
        try:
            if name not in QUERIES:
                raise HpcdistError(f"unknown scheduler query {name!r}")
            cfuture.set_result(getattr(self, name)(*args))
        except Exception as exc:  # noqa: BLE001 - the asking thread re-raises it
            cfuture.set_exception(exc)

    def _on_close(self, src: int, header: tuple, buffers: list) -> None:
        _, code, cfuture = header
        for rank in self.worker_ranks:
            self.transport.send(rank, (m.SHUTDOWN, code))
        self.closing = Shutdown(self.worker_ranks, cfuture, time.monotonic() + SHUTDOWN_GRACE)

    def _finish_close(self, timed_out: bool) -> None:
        self._baton.stop()
        tracing.close(self.trace)
        self.closing.finish(timed_out)

    # ---- from workers ---------------------------------------------------------------------------

    def _on_hello(self, src: int, header: tuple, buffers: list) -> None:
        self.info[src] = header[1]

    def _on_done(self, src: int, header: tuple, buffers: list) -> None:
        now = time.monotonic()
        events = []
        cause = (m.DONE, src, next(_stimuli))
        state_of = self.state.state_of
        for key, nbytes, duration, fetched, inline in header[1]:
            # only a key still processing becomes memory: a result of a key released (or
            # cancelled) meanwhile is dropped, and kept here it would never be popped
            if inline is not None and state_of(key) == PROCESSING:
                self.small[key] = inline
            events.append(Finished(now, key, src, nbytes, duration, self._known(src, fetched), stimulus_id=cause))
        self._handle(*events)

    def _on_failed(self, src: int, header: tuple, buffers: list) -> None:
        _, key, exc_bytes, text, duration, fetched, infra = header
        # the copies it made since its last report may be inputs of other tasks queued there
        fetched = self._known(src, fetched)
        error = (exc_bytes, text, src, self.info.get(src, {}).get("host", "?"), self.transport.size)
        cause = (m.FAILED, src, next(_stimuli))
        self._handle(Failed(time.monotonic(), key, src, error, duration, fetched, infrastructure=infra,
                            stimulus_id=cause))

    def _known(self, src: int, fetched: tuple) -> tuple:
        """Keep copies the state knows about; free copies of keys it has already forgotten."""
        self.pushes.reported(src, fetched)
        known = tuple(k for k in fetched if self.state.state_of(k) not in (None, "forgotten"))
        stale = [k for k in fetched if k not in known]
        if stale:
            self.frees.add(src, stale)
        return known

    def _on_data(self, src: int, header: tuple, buffers: list) -> None:
        self.gathers.arrived(src, header[1], header[2], buffers)

    def _on_steal_reply(self, src: int, header: tuple, buffers: list) -> None:
        cause = (m.STEAL_REPLY, src, next(_stimuli))
        self._handle(StealReply(time.monotonic(), header[1], src, header[2], stimulus_id=cause))

    def _on_lost(self, src: int, header: tuple, buffers: list) -> None:
        """The transport says worker ``src`` died: the survivors take over its work (RankLost)."""
        if src not in self.info:
            return
        hello, start = self.info[src], len(self._notes)
        self._handle(RankLost(time.monotonic(), src, stimulus_id=(m.LOST, src, next(_stimuli))))
        note = self._drop(src, header[1], hello, losses.pop_recovered(self._notes, start))
        losses.tell_survivors(self.transport.send, self.worker_ranks, src, header[1])
        self.notify(note)  # the client's record and the user's hooks, on the client's callback thread
        self.gathers.lost(src)
        if self.closing is not None and self.closing.bye(src):
            self._finish_close(timed_out=False)
        elif not self.worker_ranks:
            self.fail_all(WorkerLost(f"every worker was lost (the last: {header[1]})"))
            self._baton.stop()  # nothing left to schedule on

    def _drop(self, src: int, reason: str, hello: dict | None = None, cost: Any = None) -> losses.WorkerLoss:
        """Forget worker ``src``; keep (and log) the record of what its loss cost (the state's Recovered)."""
        self.info = {r: i for r, i in self.info.items() if r != src}  # a new dict: clients read it
        self.lost[src] = (reason, time.time())
        tracing.lost(self.trace, src, reason)
        self.worker_ranks = [r for r in self.worker_ranks if r != src]
        self.scatter_rr = itertools.cycle(self.worker_ranks)
        self.recoveries.append(losses.logged(src, reason, self.lost[src][1], hello, cost, len(self.worker_ranks)))
        return self.recoveries[-1]

    def _on_bye(self, src: int, header: tuple, buffers: list) -> None:
        if self.closing is not None and self.closing.bye(src):
            self._finish_close(timed_out=False)

    def fail_all(self, error: BaseException) -> None:
        """The world is broken: fail every unfinished future and pending request with ``error``."""
        self.failed = error
        notes, self._notes = self._notes, []
        keys = []
        try:
            if self.state is not None:
                keys = list(self.state.unfinished_wanted())
        except Exception as exc:  # noqa: BLE001 - a broken state: fail what the client waits for
            logger.error("hpcdist: while failing every pending future, reading the scheduler state failed too: %r", exc)
        losses.fail_notes(self.notify, notes + [Erred(key, error) for key in keys], error)
        self.gathers.fail_all(error)
        if self.closing is not None:
            self.closing.fail()

    def crash(self, exc: BaseException) -> None:
        """The loop failed: a failure never leaves the driver or the world hanging.

        A broken transport fails every pending future with :class:`WorkerLost` (a dead worker
        is not a crash: see :meth:`_on_lost`); a bug in hpcdist's own loop is reported with its traceback.
        Either way the world is then aborted (on MPI that ends every rank).
        """
        if isinstance(exc, TransportError):
            logger.error("hpcdist: %s", exc)
            error: BaseException = WorkerLost(str(exc))
        else:
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            logger.error("hpcdist: internal error in the scheduler:\n%s", text.rstrip("\n"))
            error = HpcdistError(f"internal error in the scheduler: {exc!r}")
        try:
            self.fail_all(error)
        finally:
            self._baton.stop()
            self.transport.abort(1)


def run_guarded(scheduler: Scheduler) -> None:
    """The scheduler thread's body (see :meth:`Scheduler.crash` for failures)."""
    try:
        scheduler.run()
    except BaseException as exc:  # noqa: BLE001
        scheduler.crash(exc)
