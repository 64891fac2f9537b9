"""The message transport interface the scheduler, worker and client are written against.

A transport connects ``size`` endpoints numbered by rank: rank 0 runs the scheduler and the
driver, ranks 1..size-1 are workers. A message is ``(header, buffers)``: a small picklable
header (the runtime uses tuples) and a list of raw byte buffers that travel out of band,
typically the buffers of :func:`hpcdist.runtime.serialize.dumps`.
"""

from __future__ import annotations

import abc
import numbers
from typing import Any, Sequence

from hpcdist.errors import TransportError

#: what :meth:`Transport.recv` returns: (source rank, header, buffers)
Message = tuple[int, Any, list]
#: header kind of what a transport that detects dead peers delivers once per dead peer:
#: ``(peer, (PEER_LOST, reason), [])``, after every message that peer sent before it died
PEER_LOST = "lost"

class DroppedBuffer(bytes):
    """Stands in (empty) for a received buffer that could not be allocated; its data was discarded.

    The message still arrives, so the runtime fails only what needed that value (a gather, a
    result, a dependent task) instead of the whole world. ``nbytes`` is the size that was
    refused, ``reason`` the allocation error.
    """

    nbytes_refused: int
    reason: str

    def __new__(cls, nbytes: int, reason: str) -> "DroppedBuffer":
        self = super().__new__(cls)
        self.nbytes_refused = nbytes
        self.reason = reason
        return self

    def describe(self) -> str:
        """``"could not allocate N bytes (MemoryError: ...)"``."""
        return f"could not allocate {self.nbytes_refused} bytes to receive it ({self.reason})"


def allocate(nbytes: int) -> Any:
    """A fresh, uninitialised receive buffer of ``nbytes`` (uint8 numpy array); tests patch it."""
    import numpy as np

    return np.empty(nbytes, dtype=np.uint8)


def allocate_or_drop(nbytes: int) -> Any:
    """:func:`allocate`, or a :class:`DroppedBuffer` if the memory is not there."""
    try:
        return allocate(nbytes)
    except MemoryError as exc:
        return DroppedBuffer(nbytes, f"MemoryError: {exc}" if str(exc) else "MemoryError")


def dropped_in(buffers: Sequence[Any]) -> DroppedBuffer | None:
    """The first :class:`DroppedBuffer` among ``buffers``, if any."""
    for buf in buffers:
        if type(buf) is DroppedBuffer:
            return buf
    return None


class Transport(abc.ABC):
    """One rank's endpoint of a message transport.

    Contract shared by every implementation:

    * :meth:`send` is thread-safe and never blocks on the network: it queues.
    * Messages from one sender to one destination arrive in the order they were sent
      (for sends made from one thread; sends from different threads are not ordered).
    * ``dest == self.rank`` is loopback: the message reaches this endpoint's own
      :meth:`recv` without pickling or copying, so header and buffers are the very objects
      passed to :meth:`send`. Treat received headers as immutable.
    * :meth:`recv` is called from one thread at a time (a worker hands it between its
      executor and its communication thread, see :mod:`hpcdist.runtime.worker`).
    * Received buffers are writable, contiguous uint8 numpy arrays (or memoryviews) owned by
      the receiver, usable as ``loads(data, buffers=...)`` without copying.
    """

    #: this endpoint's rank; 0 = scheduler/driver, 1..size-1 = workers
    rank: int
    #: number of ranks
    size: int

    @abc.abstractmethod
    def send(self, dest: int, header: Any, buffers: Sequence[Any] = ()) -> None:
        """Queue a message for rank ``dest``.

        Args:
            dest: destination rank, ``0 <= dest < size``; ``self.rank`` means loopback.
            header: a small picklable object (treated as immutable once sent).
            buffers: buffer-protocol objects (C- or F-contiguous) sent out of band; the
                caller must not mutate them afterwards.

        Raises:
            TransportError: bad destination, unpicklable header, or the transport is closed.
        """

    @abc.abstractmethod
    def recv(self, timeout: float | None) -> Message | None:
        """Wait for the next message.

        Args:
            timeout: seconds to wait; ``None`` waits for ever, ``0`` polls once.

        Returns:
            ``(source_rank, header, buffers)``, or ``None`` if nothing came in time.

        Raises:
            TransportError: the transport is closed or was aborted.
        """

    @abc.abstractmethod
    def interrupt(self) -> None:
        """Make a :meth:`recv` in progress, or else the next one, return ``None`` now.

        Thread-safe; the thread waiting in :meth:`recv` uses it to hand receiving over.
        """

    @abc.abstractmethod
    def forget(self, rank: int) -> None:
        """Treat ``rank`` as dead from now on (thread-safe, idempotent).

        Sends to it are dropped without error, whatever is still queued for it is dropped, and
        messages it sends later are discarded. Called by the runtime when rank 0 says a peer was
        lost; a transport that detects a dead peer itself forgets it when it reports it.
        """

    @abc.abstractmethod
    def host_of(self, rank: int) -> str:
        """Host name of ``rank`` (exchanged at start-up)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush queued sends, finish pending requests and release resources; idempotent."""

    @abc.abstractmethod
    def abort(self, code: int = 1) -> None:
        """Tear the whole world down now; used when hpcdist's own loops fail."""

    def goodbye(self, reason: str, wait_s: float = 0.2) -> bool:
        """A worker about to end its process on purpose tells rank 0 why (best effort).

        After what this rank sent before, waiting at most ``wait_s`` seconds for it to leave;
        rank 0 then reports the loss of this rank with ``reason`` at once (a transport that
        detects dead peers). The caller ends the process next. This default says nothing.

        Returns:
            Whether the goodbye went out.
        """
        return False

    def _check_dest(self, dest: int) -> None:
        if isinstance(dest, bool) or not isinstance(dest, numbers.Integral) or not 0 <= dest < self.size:
            raise TransportError(f"rank {self.rank}: destination {dest!r} is not a rank of a world of size {self.size}")

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} rank {self.rank} of {self.size}>"
