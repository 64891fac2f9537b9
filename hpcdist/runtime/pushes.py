"""Inputs rank 0's scheduler has their holders push ahead to a task's worker (the loop thread)."""

from __future__ import annotations

from typing import Callable, Iterable

from hpcdist.runtime import messages as m
from hpcdist.runtime.scheduling import policy
from hpcdist.runtime.scheduling.tables import shrink


class Pushes:
    """The PUSH messages of a round, and the pushes sent whose copies were not reported yet.

    Having each input's holder send it when the task is sent, instead of when the worker asks,
    saves a hop per input (the holder wakes while the task travels). An input already pushed to
    a rank and not reported back keeps its holders list in the next COMPUTE, so the worker asks
    for it itself if it does not have it: a lost push can never leave a task waiting.

    Args:
        send: ``send(rank, header)``, the scheduler's transport send.
        host_of: rank -> host name (the transport's).
    """

    __slots__ = ("_send", "_host_of", "_queued", "_unreported")

    def __init__(self, send: Callable[[int, tuple], None], host_of: Callable[[int], str | None]) -> None:
        self._send = send
        self._host_of = host_of
        self._queued: dict[int, list[tuple[str, int]]] = {}  # holder -> [(key, dest)], sent with the COMPUTEs
        self._unreported: dict[str, set[int]] = {}  # key -> ranks a push went to, until they report the copy

    def deps(self, rank: int, deps: dict) -> dict:
        """Queue a push to ``rank`` of each input of ``deps`` (key -> holders) it lacks.

        Returns:
            ``deps`` with ``(pusher, holders)`` for each input pushed in this round.
        """
        out = dict(deps)
        for dep, holders in deps.items():
            if not holders or rank in holders:
                continue
            pushed = self._unreported.setdefault(dep, set())
            if rank in pushed:
                continue
            pushed.add(rank)
            holder = policy.pick_holder(holders, rank, self._host_of)
            self._queued.setdefault(holder, []).append((dep, rank))
            out[dep] = (holder, holders)  # pushed by holder; the others, should it die
        return out

    def reported(self, rank: int, keys: Iterable[str]) -> None:
        """``rank`` reported its copies of ``keys``: a later need there may be pushed again."""
        unreported = self._unreported
        for key in keys:
            pushed = unreported.get(key)
            if pushed is not None:
                pushed.discard(rank)

    def forget(self, keys: Iterable[str]) -> None:
        """The state forgot ``keys``: drop their pushes."""
        unreported = self._unreported
        for key in keys:
            unreported.pop(key, None)

    def shrink(self) -> None:
        """Give back the memory of many forgotten keys (see :func:`~hpcdist.runtime.scheduling.tables.shrink`)."""
        shrink(self._unreported)

    def send(self) -> None:
        """Send the round's PUSH messages (after its COMPUTEs)."""
        for holder, items in self._queued.items():
            self._send(holder, (m.PUSH, items))
        self._queued.clear()

    def sizes(self) -> dict[str, int]:
        """``{"pushed": keys with unreported pushes, "pushes": pushes queued}``."""
        return {"pushed": len(self._unreported), "pushes": sum(map(len, self._queued.values()))}
