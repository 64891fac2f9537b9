"""The keys rank 0's scheduler tells each worker to free, batched (the scheduler's loop thread)."""

from __future__ import annotations

import time
from typing import Callable

from hpcdist.runtime import messages as m

#: frees wait for this many keys or this many seconds, whichever comes first
FREE_BATCH = 256
FREE_DELAY = 0.005


class Frees:
    """Keys to free per worker rank, sent in batches.

    One message per released future was most of the traffic with tiny tasks: frees wait for
    :data:`FREE_BATCH` keys or :data:`FREE_DELAY` seconds, and a COMPUTE to a rank carries the
    rank's pending frees (:meth:`take`), applied before its tasks (a key freed then recomputed
    there must be freed first): one message instead of two.

    Args:
        send: ``send(rank, header)``, the scheduler's transport send.
    """

    __slots__ = ("_send", "_pending", "_since")

    def __init__(self, send: Callable[[int, tuple], None]) -> None:
        self._send = send
        self._pending: dict[int, list[str]] = {}  # rank -> keys
        self._since = 0.0  # when the oldest pending key was added

    def __len__(self) -> int:
        """Keys pending, over every rank."""
        return sum(map(len, self._pending.values()))

    def add(self, rank: int, keys: list[str]) -> None:
        """Free ``keys`` on ``rank`` with its next COMPUTE or the next batch."""
        if not self._pending:
            self._since = time.monotonic()
        self._pending.setdefault(rank, []).extend(keys)

    def take(self, rank: int) -> list[str] | None:
        """The keys pending for ``rank``, to go with a COMPUTE (None if there are none)."""
        return self._pending.pop(rank, None)

    def send_due(self) -> None:
        """Send every rank its pending frees if the batch is full or its oldest key waited long enough."""
        pending = sum(map(len, self._pending.values()))
        if pending >= FREE_BATCH or (pending and time.monotonic() - self._since >= FREE_DELAY):
            for rank, keys in self._pending.items():
                if keys:
                    self._send(rank, (m.FREE, keys))
            self._pending.clear()
