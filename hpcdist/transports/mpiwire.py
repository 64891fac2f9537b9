"""The MPI transport's wire format and the receive side of one message.

A message is a header (pickled with the buffer sizes and the chunk size, tag
:data:`TAG_HEADER`) followed by each buffer as one or more :data:`TAG_DATA` messages of at
most the chunk size. :class:`Incoming` tracks a message whose header has arrived while its
buffers are received.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hpcdist.errors import TransportError
from hpcdist.transports import base
from hpcdist.transports.base import DroppedBuffer, Message

TAG_HEADER = 1
TAG_DATA = 2


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
