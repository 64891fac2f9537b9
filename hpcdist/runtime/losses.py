"""What rank 0 does about a lost worker besides the state's recovery: the record of the loss and its
log line, telling the survivors (PEER_DOWN), and the client-facing note that runs the user's
``on_worker_lost`` hooks.

Called by the scheduler's loop only, and only when a worker dies: nothing here is on a per-task path.
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

from hpcdist.runtime import messages as m
from hpcdist.runtime.log import get_logger
from hpcdist.runtime.scheduling.vocabulary import Erred, Recovered

__all__ = ["LOG_KEYS", "WorkerLoss", "call_hooks", "fail_notes", "logged", "pop_recovered", "text", "tell_survivors", "tell_of_losses"]

logger = get_logger(__name__)

#: keys the log line names per list (the record keeps more, the counts are exact)
LOG_KEYS = 10


class WorkerLoss(NamedTuple):
    """One lost worker and what its loss cost: an entry of ``Client.recoveries``, and the note
    that runs the ``Client.on_worker_lost`` hooks.

    Key lists are sorted and hold at most
    :data:`~hpcdist.runtime.scheduling.vocabulary.RECOVERED_KEYS_MAX` keys; the ``n_`` counts
    are exact. See :class:`~hpcdist.runtime.scheduling.vocabulary.Recovered` for what each list
    means.

    Attributes:
        rank: The lost worker.
        reason: How it was found (the transport's words: its pid, exit status, the silence), as
            in ``Client.lost_workers``.
        time: When rank 0 declared it lost (``time.time()``).
        pid: Its process id, None if it never said hello.
        host: Its host name, None if it never said hello.
        running: The tasks it was running (blamed for its death); empty if it was idle.
        deaths: For each of ``running``, the workers that have died running it so far.
        requeued: Tasks put back to be placed on the survivors.
        recomputed: Keys computed again from their lineage (their only copy was there).
        erred: Keys that erred with the loss (``WorkerLost``, ``KilledWorker``, no worker left for them).
        n_requeued: How many tasks were put back.
        n_recomputed: How many keys are recomputed.
        n_erred: How many keys erred.
        workers_left: Live workers after it.
    """

    rank: int
    reason: str
    time: float
    pid: int | None = None
    host: str | None = None
    running: tuple[str, ...] = ()
    deaths: tuple[int, ...] = ()
    requeued: tuple[str, ...] = ()
    recomputed: tuple[str, ...] = ()
    erred: tuple[str, ...] = ()
    n_requeued: int = 0
    n_recomputed: int = 0
    n_erred: int = 0
    workers_left: int = 0


def pop_recovered(notes: list, start: int) -> Recovered | None:
    """Take the :class:`Recovered` out of the client notes a loss produced (``notes[start:]``).

    It is the scheduler's to log, not a note for the futures.
    """
    for i in range(len(notes) - 1, start - 1, -1):
        if type(notes[i]) is Recovered:
            return notes.pop(i)
    return None


def logged(rank: int, reason: str, when: float, hello: dict | None, cost: Recovered | None,
           workers_left: int) -> WorkerLoss:
    """The record of the loss of ``rank``, written to rank 0's log (the ``hpcdist`` logger: stderr,
    one line, see :func:`text`).

    Args:
        rank: The lost worker.
        reason: How the transport found it.
        when: When it was declared lost (``time.time()``).
        hello: Its hello (pid, host), None if it never said one.
        cost: The state's :class:`Recovered`, None if there was no state yet (nothing was lost with it).
        workers_left: Live workers after it.
    """
    hello = hello or {}
    cost = cost or Recovered(rank)
    rec = WorkerLoss(rank, reason, when, hello.get("pid"), hello.get("host"), *cost[1:], workers_left=workers_left)
    logger.error("hpcdist: %s", text(rec))
    return rec


def text(rec: WorkerLoss) -> str:
    """The log line of a loss (the one place it is worded), e.g. ``lost rank 2 (pid 4242, host n1) at
    17:20:01: REASON; it was running 'f-1' (1 worker death(s) running it); put back 3 task(s);
    recomputing 2 key(s): a, b; erred 1 key(s): x; 2 worker(s) left``. Key lists name the first
    :data:`LOG_KEYS` keys (``(+N more)``); parts with nothing to say are left out (an idle worker: ``idle``)."""
    who = ", ".join(x for x in (f"pid {rec.pid}" if rec.pid is not None else "",
                                f"host {rec.host}" if rec.host else "") if x)
    head = f"lost rank {rec.rank} ({who or 'before it said hello'})"
    parts = [f"{head} at {time.strftime('%H:%M:%S', time.localtime(rec.time))}: {rec.reason}"]
    if rec.running:
        parts.append("it was running " + ", ".join(
            f"{k!r} ({n} worker death(s) running it)" for k, n in zip(rec.running, rec.deaths)))
    elif not (rec.n_requeued or rec.n_recomputed or rec.n_erred):
        parts.append("idle")
    if rec.n_requeued:
        parts.append(f"put back {rec.n_requeued} task(s)")
    if rec.n_recomputed:
        parts.append(f"recomputing {rec.n_recomputed} key(s): {_keys(rec.recomputed, rec.n_recomputed)}")
    if rec.n_erred:
        parts.append(f"erred {rec.n_erred} key(s): {_keys(rec.erred, rec.n_erred)}")
    parts.append(f"{rec.workers_left} worker(s) left")
    return "; ".join(parts)


def _keys(keys: tuple[str, ...], n: int) -> str:
    shown = ", ".join(keys[:LOG_KEYS])
    return f"{shown} (+{n - min(len(keys), LOG_KEYS)} more)" if n > min(len(keys), LOG_KEYS) else shown


def call_hooks(hooks: list[Callable[[int, str], Any]], note: WorkerLoss) -> None:
    """Call each ``Client.on_worker_lost`` hook with ``(note.rank, note.reason)``; what one raises is
    logged, never raised (a user's hook never breaks the runtime), and the next one still runs."""
    for hook in list(hooks):
        try:
            hook(note.rank, note.reason)
        except Exception:  # noqa: BLE001
            logger.exception("hpcdist: the on_worker_lost hook %r failed for rank %d", hook, note.rank)


def fail_notes(notify: Callable[[tuple], None], notes: list, error: BaseException) -> None:
    """The world is broken (every worker lost, or the loop failed): hand the client each note, or
    if that fails the plainest one, ``Erred(key, error)``.

    Each notification on its own: one that fails (the bug may be there) must not keep the others
    waiting. A :class:`Recovered` left behind by a loss that failed half-way is no note: skipped.
    """
    for ins in notes:
        if type(ins) is Recovered:
            continue
        for attempt in (ins, Erred(ins.key, error)):  # the plainest note if the first fails
            try:
                notify(attempt)
                break
            except Exception as exc:  # noqa: BLE001
                logger.error("hpcdist: while failing every pending future, telling the client about %r "
                             "failed too: %r", ins.key, exc)


def tell_survivors(send: Callable[[int, tuple], None], ranks: list[int], rank: int, reason: str) -> None:
    """Send PEER_DOWN for lost ``rank`` to every live worker in ``ranks``.

    Sent after the state applied the loss, so each survivor gets the state's STEALs of the tasks it
    takes back before it hears of the death (one sender, messages in order).
    """
    header = (m.PEER_DOWN, rank, reason)
    for dest in ranks:
        send(dest, header)


def tell_of_losses(send: Callable[[int, tuple], None], ranks: list[int], lost: dict[int, tuple[str, float]]) -> None:
    """At the start: PEER_DOWN to every worker in ``ranks`` for each rank ``lost`` before it (rank -> (reason, time))."""
    for rank, (reason, _) in lost.items():
        tell_survivors(send, ranks, rank, reason)
