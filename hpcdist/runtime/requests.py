"""Client requests the scheduler answers only once workers did: gathers and the shutdown."""

from __future__ import annotations

import itertools
from concurrent.futures import Future
from typing import Any, Callable

from hpcdist.errors import SerializationError
from hpcdist.runtime import messages as m
from hpcdist.transports.base import dropped_in


class Gathers:
    """The gather requests sent to workers and not answered yet (the scheduler's loop thread).

    Args:
        send: ``send(rank, header)``, the scheduler's transport send.
    """

    def __init__(self, send: Callable[[int, tuple], None]) -> None:
        self._send = send
        self._pending: dict[int, list] = {}  # req -> [cfuture, {key: value}, npending]
        self._ids = itertools.count()

    def __len__(self) -> int:
        return len(self._pending)

    def request(self, cfuture: Future, values: dict[str, Any], by_rank: dict[int, list[str]]) -> None:
        """Ask each rank of ``by_rank`` for its keys; ``cfuture`` gets ``values`` and them."""
        req = next(self._ids)
        self._pending[req] = [cfuture, values, sum(map(len, by_rank.values()))]
        for rank, rank_keys in by_rank.items():
            self._send(rank, (m.GET, req, rank_keys))

    def arrived(self, src: int, req: int, entries: list, buffers: list) -> None:
        """A DATA message from ``src`` answering ``req`` (see :mod:`hpcdist.runtime.messages`)."""
        entry = self._pending.get(req)
        if entry is None:
            return
        offset = 0
        for key, data, nbuf in entries:
            if data is None or isinstance(data, str):
                del self._pending[req]
                entry[0].set_exception(LookupError(f"rank {src} no longer holds {key!r}") if data is None
                                       else SerializationError(data))
                return
            bufs = buffers[offset : offset + nbuf]
            dropped = dropped_in(bufs)
            if dropped is not None:  # too large for rank 0's memory: this gather fails, the world goes on
                del self._pending[req]
                entry[0].set_exception(MemoryError(
                    f"rank 0 {dropped.describe()}: the result of {key!r} from rank {src} does not fit in "
                    "rank 0's memory; reduce it on the workers (or fetch it in parts) instead"))
                return
            entry[1][key] = (data, bufs)
            offset += nbuf
        entry[2] -= len(entries)
        if entry[2] == 0:
            del self._pending[req]
            entry[0].set_result(entry[1])

    def fail_all(self, error: BaseException) -> None:
        """Fail every pending gather with ``error``."""
        for entry in self._pending.values():
            if not entry[0].done():
                entry[0].set_exception(error)
        self._pending.clear()


class Shutdown:
    """The workers' shutdown: SHUTDOWN sent to each, waiting for every BYE until :attr:`deadline`.

    Args:
        ranks: the worker ranks.
        cfuture: receives the ranks that did not say goodbye in time (``[]`` if all did).
        deadline: ``time.monotonic()`` after which the shutdown gives up waiting.
    """

    __slots__ = ("deadline", "_ranks", "_byes", "_cfuture")

    def __init__(self, ranks: list[int], cfuture: Future, deadline: float) -> None:
        self.deadline = deadline
        self._ranks = ranks
        self._byes: set[int] = set()
        self._cfuture = cfuture

    def bye(self, rank: int) -> bool:
        """``rank`` said goodbye; True once every worker has."""
        self._byes.add(rank)
        return len(self._byes) == len(self._ranks)

    def finish(self, timed_out: bool) -> None:
        """Answer the request: the missing ranks if it timed out, else none."""
        self._cfuture.set_result(sorted(set(self._ranks) - self._byes) if timed_out else [])

    def fail(self) -> None:
        """The world is broken: every worker counts as missing."""
        if not self._cfuture.done():
            self._cfuture.set_result(list(self._ranks))
