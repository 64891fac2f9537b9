"""The MPI transport's posted sends: each ``Isend`` request, the buffer it reads and its destination.

Written only by :class:`Posted`, on the thread that holds the transport's MPI lock. A dead rank's
requests never complete: :meth:`Posted.free_to` frees them (MPI may still finish them in the
background, so their buffers stay referenced until :meth:`Posted.clear`). Never imports mpi4py.
"""

from __future__ import annotations

import time
from typing import Any


class Posted:
    """Sends posted and not completed yet.

    Args:
        MPI: the ``mpi4py.MPI`` module.
        comm: the transport's communicator.
    """

    __slots__ = ("_MPI", "_comm", "reqs", "keep", "dests", "_freed")

    def __init__(self, MPI: Any, comm: Any) -> None:
        self._MPI = MPI
        self._comm = comm
        self.reqs: list[Any] = []  # pending Isend requests ...
        self.keep: list[Any] = []  # ... the buffers they read, kept alive until done ...
        self.dests: list[int] = []  # ... and where they go
        self._freed: list[Any] = []  # buffers of requests freed before they completed

    def track(self, req: Any, keep: Any, dest: int) -> None:
        """Keep ``req`` (reading ``keep``, to ``dest``) until it completes."""
        self.reqs.append(req)
        self.keep.append(keep)
        self.dests.append(dest)

    def post(self, dest: int, data: Any, tag: int) -> None:
        """``Isend`` ``data`` (bytes-like) to ``dest`` with ``tag`` and track it."""
        self.track(self._comm.Isend([data, self._MPI.BYTE], dest, tag), data, dest)

    def post_untracked(self, dest: int, data: Any, tag: int) -> None:
        """``Isend`` that nobody waits for (to a rank that may be gone): freed at once."""
        self._freed.append(data)
        self._comm.Isend([data, self._MPI.BYTE], dest, tag).Free()

    def test(self) -> None:
        """Drop the requests that completed."""
        reqs = self.reqs
        if not reqs:
            return
        done = self._MPI.Request.Testsome(reqs)
        if done:
            if len(done) == len(reqs):
                reqs.clear()
                self.keep.clear()
                self.dests.clear()
            else:
                self._drop(set(done))

    def free_to(self, rank: int) -> int:
        """Free the requests to ``rank`` (dead: they would never complete); how many."""
        mine = {i for i, d in enumerate(self.dests) if d == rank}
        for i in mine:
            try:
                self.reqs[i].Free()
            except self._MPI.Exception:
                pass  # completed or already freed
            self._freed.append(self.keep[i])
        if mine:
            self._drop(mine)
        return len(mine)

    def wait(self, seconds: float) -> None:
        """Test until every request completed or ``seconds`` passed."""
        deadline = time.monotonic() + seconds
        while self.reqs and time.monotonic() < deadline:
            self.test()
            if self.reqs:
                time.sleep(1e-4)

    def clear(self) -> None:
        """Forget every request and buffer (the communicator is going away)."""
        self.reqs.clear()
        self.keep.clear()
        self.dests.clear()
        self._freed.clear()

    def _drop(self, gone: set[int]) -> None:
        self.reqs = [r for i, r in enumerate(self.reqs) if i not in gone]
        self.keep = [k for i, k in enumerate(self.keep) if i not in gone]
        self.dests = [d for i, d in enumerate(self.dests) if i not in gone]
