"""In-process transport: every rank is an endpoint in this process with a queue as inbox.

Used by the thread backend and the unit tests. Semantics follow :class:`Transport`, with
these specifics:

* Headers are passed by reference, never copied or pickled: treat them as immutable.
* Buffers sent to another rank are copied into fresh uint8 numpy arrays, so a task that
  mutates its input cannot change another worker's (or the sender's) data, as with MPI.
  Loopback messages are delivered without copying.
* :meth:`InprocTransport.abort` closes every endpoint of the hub: each pending or later
  :meth:`~InprocTransport.recv` and :meth:`~InprocTransport.send` raises
  :class:`TransportError` naming the rank and the code. ``abort`` itself returns, so the
  caller's error path can go on logging.
* Messages sent to an endpoint that was closed are dropped.
"""

from __future__ import annotations

import pickle
import queue
import socket
import threading
import time
from typing import Any, Sequence

import numpy as np

from hpcdist.transports.base import DroppedBuffer, Message, Transport, allocate_or_drop
from hpcdist.errors import TransportError

# put into inboxes to wake receivers when the hub is aborted or the endpoint closed
_WAKE = object()
# put into an inbox by interrupt(): its recv returns None
_INTERRUPT = object()


def copy_buffer(buf: Any) -> np.ndarray:
    """A fresh, writable uint8 numpy copy of a contiguous buffer's bytes (memory order)."""
    raw = pickle.PickleBuffer(buf).raw()
    out = allocate_or_drop(raw.nbytes)
    if type(out) is not DroppedBuffer:  # the receiver fails what needed it, as on MPI
        out[:] = np.frombuffer(raw, dtype=np.uint8)
    return out


class InprocHub:
    """Creates and connects the endpoints of an in-process world of ``size`` ranks.

    Args:
        size: number of ranks (at least 1).
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise TransportError(f"an in-process world needs at least 1 rank, got {size}")
        self.size = size
        self.hostname = socket.gethostname()
        self.aborted: tuple[int, int] | None = None  # (rank that aborted, code)
        self._inboxes: list[queue.Queue] = [queue.Queue() for _ in range(size)]
        self._closed = [False] * size
        self._endpoints: dict[int, InprocTransport] = {}
        self._lock = threading.Lock()

    def endpoint(self, rank: int) -> "InprocTransport":
        """The transport of ``rank`` (the same object on every call)."""
        if not 0 <= rank < self.size:
            raise TransportError(f"rank {rank} is not in an in-process world of size {self.size}")
        with self._lock:
            if rank not in self._endpoints:
                self._endpoints[rank] = InprocTransport(self, rank)
            return self._endpoints[rank]

    def _abort(self, rank: int, code: int) -> None:
        with self._lock:
            if self.aborted is None:
                self.aborted = (rank, code)
        for inbox in self._inboxes:
            inbox.put(_WAKE)

    def _error(self, rank: int) -> TransportError | None:
        if self.aborted is not None:
            by, code = self.aborted
            return TransportError(f"rank {rank}: the in-process world was aborted by rank {by} with code {code}")
        if self._closed[rank]:
            return TransportError(f"rank {rank}: transport used after close()")
        return None


class InprocTransport(Transport):
    """One endpoint of an :class:`InprocHub`; see the module docstring for semantics."""

    def __init__(self, hub: InprocHub, rank: int) -> None:
        self.hub = hub
        self.rank = rank
        self.size = hub.size
        self._inbox = hub._inboxes[rank]
        self._forgotten: frozenset[int] = frozenset()  # replaced whole: read without a lock

    def send(self, dest: int, header: Any, buffers: Sequence[Any] = ()) -> None:
        """Deliver to ``dest``'s inbox; buffers are copied unless ``dest`` is this rank."""
        err = self.hub._error(self.rank)
        if err is not None:
            raise err
        self._check_dest(dest)
        if dest == self.rank:
            self._inbox.put((self.rank, header, list(buffers)))
            return
        if self.hub._closed[dest] or dest in self._forgotten:
            return
        copies = [copy_buffer(b) for b in buffers]
        self.hub._inboxes[dest].put((self.rank, header, copies))

    def recv(self, timeout: float | None) -> Message | None:
        """Next message from the inbox, or ``None`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        while True:
            err = self.hub._error(self.rank)
            if err is not None:
                raise err
            try:
                if deadline is None:
                    item = self._inbox.get()
                else:
                    left = deadline - time.monotonic()
                    item = self._inbox.get(timeout=left) if left > 0 else self._inbox.get_nowait()
            except queue.Empty:
                return None
            if item is _INTERRUPT:
                return None
            if item is not _WAKE and item[0] not in self._forgotten:
                return item
            # a wake-up: the loop re-checks for abort/close, else keeps waiting

    def interrupt(self) -> None:
        """Make the current or next :meth:`recv` return ``None``."""
        self._inbox.put(_INTERRUPT)

    def forget(self, rank: int) -> None:
        """Drop ``rank``: sends to it are dropped, messages from it discarded."""
        self._check_dest(rank)
        if rank != self.rank:
            self._forgotten = self._forgotten | {rank}

    def host_of(self, rank: int) -> str:
        """The local host name (every rank lives in this process)."""
        self._check_dest(rank)
        return self.hub.hostname

    def close(self) -> None:
        """Mark this endpoint closed; later sends to it are dropped. Idempotent."""
        if not self.hub._closed[self.rank]:
            self.hub._closed[self.rank] = True
            self._inbox.put(_WAKE)

    def abort(self, code: int = 1) -> None:
        """Close every endpoint of the hub: their ``recv``/``send`` raise TransportError."""
        self.hub._abort(self.rank, code)
