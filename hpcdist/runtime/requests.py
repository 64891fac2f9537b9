"""Client requests the scheduler answers only once workers did: gathers and the shutdown."""

from __future__ import annotations

import itertools
from concurrent.futures import Future
from typing import Any, Callable

from hpcdist.errors import RemoteTraceback, SerializationError
from hpcdist.runtime import messages as m
from hpcdist.runtime import serialize
from hpcdist.transports.base import dropped_in

#: states of a key that is being recomputed (a gathered key is wanted: never released otherwise)
_RECOMPUTING = frozenset({"released", "waiting", "ready", "processing"})


class Gathers:
    """The gather requests sent to workers and not answered yet (the scheduler's loop thread).

    Args:
        send: ``send(rank, header)``, the scheduler's transport send.
    """

    def __init__(self, send: Callable[[int, tuple], None]) -> None:
        self._send = send
        self._pending: dict[int, list] = {}  # req -> [cfuture, {key: value}, npending, {rank: keys}]
        self._ids = itertools.count()
        #: gathers that asked a worker that died: (keys, cfuture), started again by :meth:`retry`
        self.parked: list[tuple[list[str], Future]] = []

    def __len__(self) -> int:
        return len(self._pending)

    def request(self, cfuture: Future, values: dict[str, Any], by_rank: dict[int, list[str]]) -> None:
        """Ask each rank of ``by_rank`` for its keys; ``cfuture`` gets ``values`` and them."""
        req = next(self._ids)
        self._pending[req] = [cfuture, values, sum(map(len, by_rank.values())), by_rank]
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

    def start(self, keys: list[str], cfuture: Future, small: dict[str, bytes], state: Any) -> None:
        """Gather ``keys``: small results from rank 0's copies, the rest from a holder each.

        Args:
            keys: the keys asked for.
            cfuture: receives ``{key: (data, buffers)}``, or the error.
            small: rank 0's copies of small results.
            state: the scheduler state (its ``who_has``).
        """
        by_rank: dict[int, list[str]] = {}
        values = {k: (small[k], []) for k in keys if k in small}
        remote = [k for k in keys if k not in values]
        who_has = state.who_has(remote)
        for key in remote:
            holders = who_has.get(key)
            if not holders and state.state_of(key) in _RECOMPUTING:  # lost with its worker
                self.parked.append((keys, cfuture))
                return
            if not holders:
                cfuture.set_exception(LookupError(f"no worker holds {key!r} (was it released?)"))
                return
            by_rank.setdefault(holders[0], []).append(key)
        if not remote:
            cfuture.set_result(values)
            return
        self.request(cfuture, values, by_rank)

    def lost(self, rank: int) -> None:
        """Worker ``rank`` died: the gathers still waiting for it are parked until :meth:`retry`."""
        for req, entry in list(self._pending.items()):
            if rank in entry[3] and not entry[0].done():
                del self._pending[req]
                self.parked.append(([*entry[1], *(k for ks in entry[3].values() for k in ks)], entry[0]))

    def retry(self, small: dict[str, bytes], state: Any) -> None:
        """Start again each parked gather whose keys are all held again (recomputed on the
        survivors); fail it if one of them erred or is gone. Called only while some are parked."""
        parked, self.parked = self.parked, []
        for keys, cfuture in parked:
            waiting = False
            for key in keys:
                if key in small:
                    continue
                what = state.state_of(key)
                if what == "memory":
                    continue
                if what in (None, "forgotten", "erred", "cancelled"):
                    error = _task_error(state.error_of(key)) if what == "erred" else None
                    cfuture.set_exception(error if isinstance(error, BaseException) else LookupError(
                        f"{key!r} was lost with its worker and is {what or 'unknown'} now"))
                    break
                waiting = True  # being recomputed (one of _RECOMPUTING)
            else:
                if waiting:
                    self.parked.append((keys, cfuture))
                else:
                    self.start(keys, cfuture, small, state)

    def fail_all(self, error: BaseException) -> None:
        """Fail every pending gather with ``error``."""
        for entry in self._pending.values():
            if not entry[0].done():
                entry[0].set_exception(error)
        self._pending.clear()
        for _, cfuture in self.parked:
            if not cfuture.done():
                cfuture.set_exception(error)
        self.parked.clear()


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


def _task_error(error: Any) -> Any:
    """The exception of an erred key: a task's own error (the scheduler's ``(exc_bytes, text, rank,
    host, size)``) rebuilt with its remote traceback, as the client raises it; others as they are."""
    if not isinstance(error, tuple) or len(error) != 5:
        return error
    exc_bytes, text, rank, host, size = error
    try:
        exc = serialize.loads(exc_bytes)
    except Exception:  # noqa: BLE001 - its class may not be importable on rank 0
        return None
    exc.__cause__ = RemoteTraceback(f"task failed on rank {rank} of {size} on host {host}:\n{text}")
    return exc
