"""The MPI transport's wire format and the receive side of one message.

A message is a header (pickled with the buffer sizes and the chunk size, tag
:data:`TAG_HEADER`) followed by each buffer as one or more :data:`TAG_DATA` messages of at
most the chunk size. :class:`Incoming` tracks a message whose header has arrived while its
buffers are received.
"""

from __future__ import annotations

import pickle
from collections import deque
from typing import Any

import numpy as np

from hpcdist.errors import TransportError
from hpcdist.transports import base
from hpcdist.transports.base import DroppedBuffer, Message

TAG_HEADER = 1
TAG_DATA = 2
#: the failure detector's heartbeats (empty) and control messages (see :mod:`~hpcdist.transports.mpiwatch`)
TAG_BEAT = 3
TAG_CTRL = 4


class Incoming:
    """A message whose header has arrived and whose buffers are being received."""

    __slots__ = ("src", "header", "bufs", "sizes", "chunk", "index", "offset", "scratch")

    def __init__(self, src: int, header: Any, sizes: list[int], chunk: int) -> None:
        self.src = src
        self.header = header
        self.sizes = sizes
        self.bufs = [base.allocate_or_drop(n) for n in sizes]
        self.chunk = chunk
        self.index = 0  # buffer being filled
        self.offset = 0  # bytes of it received
        self.scratch: np.ndarray | None = None  # where the data of a dropped buffer goes
        self._skip_empty()

    def _skip_empty(self) -> None:
        while self.index < len(self.bufs) and self.offset >= self.sizes[self.index]:
            self.index += 1
            self.offset = 0

    @property
    def done(self) -> bool:
        return self.index >= len(self.bufs)

    def next_slice(self) -> np.ndarray:
        buf = self.bufs[self.index]
        if type(buf) is DroppedBuffer:  # receive its pieces into scratch space and forget them
            n = min(self.chunk, self.sizes[self.index] - self.offset)
            if self.scratch is None or self.scratch.nbytes < n:
                try:
                    self.scratch = base.allocate(n)  # one message: at most the sender's chunk size
                except MemoryError as exc:
                    raise TransportError(f"out of memory: cannot even discard a {n}-byte message: {exc}") from exc
            return self.scratch[:n]
        return buf[self.offset : self.offset + self.chunk]

    def advance(self, n: int) -> None:
        self.offset += n
        self._skip_empty()

    def message(self) -> Message:
        return (self.src, self.header, self.bufs)


#: header messages taken per progress round before sends get their turn again
MAX_HEADERS_PER_ROUND = 64


class Receiver:
    """The receive side of the MPI transport (under its MPI lock): headers from any source,
    then each source's data messages into fresh buffers; complete messages go to ``ready``.

    Args:
        MPI: the ``mpi4py.MPI`` module.
        comm: the transport's communicator.
        rank: this rank (for error messages).
        ready: where complete messages go, in order.
        stats: the transport's counters, updated here for what is received.
        heard: per source rank, set True whenever something arrives from it (a flag store).
    """

    def __init__(self, MPI: Any, comm: Any, rank: int, ready: deque, stats: dict, heard: list[bool]) -> None:
        self._MPI = MPI
        self._comm = comm
        self._status = MPI.Status()
        self.rank = rank
        self._ready = ready
        self.stats = stats
        self._heard = heard
        self._incoming: dict[int, deque[Incoming]] = {}
        #: ranks whose messages are discarded (replaced whole by the transport)
        self.forgotten: frozenset[int] = frozenset()
        #: forgotten ranks whose headers were discarded since the transport last cleared it
        self.spoke: set[int] = set()

    def drop(self, src: int) -> None:
        """Forget the partly received messages of ``src``."""
        self._incoming.pop(src, None)

    def settle(self, src: int, rounds: int = 1000) -> None:
        """Take what ``src`` sent before its goodbye (its sends completed first): receive until
        nothing more comes and no message of ``src`` is half received (at most ``rounds`` rounds)."""
        for _ in range(rounds):
            moved = self.headers() + self.data()
            if not moved and src not in self._incoming:
                return

    def headers(self) -> int:
        """Take up to :data:`MAX_HEADERS_PER_ROUND` headers from any source; how many."""
        MPI, comm, status = self._MPI, self._comm, self._status
        got = misses = 0
        while misses < 2 and got < MAX_HEADERS_PER_ROUND:
            msg = comm.Improbe(MPI.ANY_SOURCE, TAG_HEADER, status)
            if msg is None:
                misses += 1  # the first probe may only run progress: probe again
                continue
            misses = 0
            src = status.Get_source()
            data = bytearray(status.Get_count(MPI.BYTE))
            msg.Recv([data, MPI.BYTE])
            self._heard[src] = True
            if self.forgotten and src in self.forgotten:
                self.spoke.add(src)  # its data messages are drained at the next look
                continue
            try:
                header, sizes, chunk = pickle.loads(data)
            except Exception as exc:
                raise TransportError(f"rank {self.rank}: unreadable header from rank {src}: {exc}") from exc
            entry = Incoming(src, header, sizes, chunk)
            self.stats["received"] += 1
            self.stats["bytes_received"] += len(data) + sum(sizes)
            waiting = self._incoming.get(src)
            if waiting:
                waiting.append(entry)  # stays behind the earlier message of this source
            elif entry.done:
                self._ready.append(entry.message())
            else:
                self._incoming[src] = deque([entry])
            got += 1
        return got

    def data(self) -> int:
        """Take the data messages that have come for the headers taken; how many."""
        if not self._incoming:
            return 0
        MPI, comm, status = self._MPI, self._comm, self._status
        moved = 0
        for src in list(self._incoming):
            waiting = self._incoming[src]
            while waiting:
                entry = waiting[0]
                misses = 0
                while not entry.done and misses < 2:
                    msg = comm.Improbe(src, TAG_DATA, status)
                    if msg is None:
                        misses += 1
                        continue
                    misses = 0
                    view = entry.next_slice()
                    count = status.Get_count(MPI.BYTE)
                    if count != view.nbytes:
                        raise TransportError(
                            f"rank {self.rank}: data message of {count} bytes from rank {src} where "
                            f"{view.nbytes} were expected (mismatched sender/receiver protocol)"
                        )
                    msg.Recv([view, MPI.BYTE])
                    self._heard[src] = True
                    entry.advance(count)
                    moved += 1
                    self.stats["data_messages_received"] += 1
                if not entry.done:
                    break
                waiting.popleft()
                self._ready.append(entry.message())
            if not waiting:
                del self._incoming[src]
        return moved
