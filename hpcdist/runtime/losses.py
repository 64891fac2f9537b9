"""What rank 0 does about a lost worker besides the state's recovery: the log line, telling the
survivors (PEER_DOWN), and the client-facing note that runs the user's ``on_worker_lost`` hooks.

Called by the scheduler's loop only, and only when a worker dies: nothing here is on a per-task path.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from hpcdist.runtime import messages as m
from hpcdist.runtime.scheduling.recovery import running_task

__all__ = ["WorkerGone", "describe", "tell_survivors", "tell_of_losses"]


class WorkerGone(NamedTuple):
    """Client-facing note: worker ``rank`` was lost for ``reason`` (see ``Client.on_worker_lost``)."""

    rank: int
    reason: str


def describe(state: Any, rank: int) -> str:
    """What lost ``rank`` was doing as far as the state knows (call before the state applies the loss).

    The state's own rule (:func:`~hpcdist.runtime.scheduling.recovery.running_task`) names the
    running task; a rank still busy with a cancelled task is named as such.
    """
    queued = state.processing_on(rank)
    rec = state.worker_table[rank] if rank in state.workers else None
    running = running_task(rec) if rec is not None else None
    if running is not None:
        return f"running {running!r} of {len(queued)} task(s) assigned there"
    if rec is not None and rec.cancelled:
        return f"running a cancelled task, {len(queued)} task(s) assigned there"
    return f"idle, {len(queued)} task(s) assigned there" if queued else "idle"


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
