"""The MPI transport's failure detector: heartbeats, control messages and ULFM, on the caller's MPI.

Rank 0 watches every worker, a worker watches rank 0 only (a :class:`~hpcdist.transports.liveness.Liveness`
table). :meth:`Watch.look`, called by the comm thread every half heartbeat interval with the MPI lock
held, takes the heartbeats (``TAG_BEAT``, empty) and control messages (``TAG_CTRL``, a
pickled tuple) that came in, discards whatever forgotten ranks sent, asks Open MPI's ULFM which
processes failed (where it works), and says which ranks are due a heartbeat, which fell silent and
which forgotten ranks spoke again. The transport posts and delivers; this module only receives.

Control messages, rank 0 to a worker: ``("lost", rank, reason)``: rank 0 lost that peer (the
worker forgets it and, like every survivor, skips ``MPI_Finalize``); ``("exit", reason)``: rank 0
declared *this* rank lost (it was only slow), so it must go. From a worker to rank 0: ``("bye", reason)``:
it is about to end on purpose (:meth:`~hpcdist.transports.mpi.MPITransport.goodbye`); rank 0 takes what it
sent before and declares it lost at once. Never imports mpi4py.
"""

from __future__ import annotations

import pickle
from typing import Any, Iterable

from hpcdist.transports import liveness
from hpcdist.transports.mpiwire import TAG_BEAT, TAG_CTRL, TAG_DATA, TAG_HEADER

#: a look's findings: ranks due a heartbeat, (rank, reason) of the lost, control messages
#: (source, message), forgotten ranks that spoke
Findings = tuple[list[int], list[tuple[int, str]], list[tuple[int, tuple]], list[int]]


def ulfm_works(MPI: Any, comm: Any) -> bool:
    """Whether ``comm.Get_failed()`` really reports failures: Open MPI with ULFM (mpi4py's
    stub on MPICH returns an empty group whatever happens)."""
    if not hasattr(comm, "Get_failed") or "Open MPI" not in MPI.Get_library_version():
        return False
    try:
        comm.Get_failed().Free()
    except (NotImplementedError, MPI.Exception):
        return False
    return True


class Watch:
    """One rank's failure detector over ``comm``.

    Args:
        MPI: the ``mpi4py.MPI`` module.
        comm: the transport's communicator.
        bound: seconds of silence after which a watched rank is lost.
        now: the current time (``time.monotonic()``).
        names: per rank, ``"rank R (pid P) on HOST"``, for the reasons.
    """

    def __init__(self, MPI: Any, comm: Any, bound: float, now: float, names: list[str]) -> None:
        self._MPI = MPI
        self._comm = comm
        self._status = MPI.Status()
        self.rank = comm.Get_rank()
        size = comm.Get_size()
        self.live = liveness.for_rank(self.rank, size, bound, now)
        #: the period of :meth:`look` (half the heartbeat interval)
        self.period = self.live.interval / 2
        self.names = names
        self.ulfm = ulfm_works(MPI, comm)
        #: what a heartbeat carries (nothing) and its tag
        self.beat = bytearray(0)
        self.TAG_BEAT = TAG_BEAT
        self._sink = bytearray(64)

    def look(self, now: float, forgotten: Iterable[int]) -> Findings:
        """Receive heartbeats and control messages, drain what forgotten ranks sent, ask ULFM."""
        heard = self.live.heard_flags
        forgotten = frozenset(forgotten)
        spoke: set[int] = set()
        for src in self._take(TAG_BEAT):
            heard[src] = True
            if src in forgotten:
                spoke.add(src)
        ctrl = []
        for src, data in self._take_data(TAG_CTRL):
            if src in forgotten:
                spoke.add(src)
            else:
                ctrl.append((src, pickle.loads(data)))
        for src in forgotten:
            if self._drain(src):
                spoke.add(src)
        lost = []
        for r in self._failed():
            if r in forgotten:
                continue
            why = f"{self.names[r]}: reported failed by MPI (ULFM)"
            if self.live.watching(r):
                lost.append((r, why))
            else:  # a worker's peer: forgotten as if rank 0 had said so
                ctrl.append((self.rank, ("lost", r, why)))
        lost += [(r, f"{self.names[r]}: no heartbeat for {gap:.1f} s") for r, gap in self.live.silent(now)
                 if r not in {r for r, _ in lost}]
        return self.live.due_beats(now), lost, ctrl, sorted(spoke)

    def read_ctrl(self) -> list[tuple[int, tuple]]:
        """Control messages waiting now (at close, for a last ``lost`` notice)."""
        return [(src, pickle.loads(data)) for src, data in self._take_data(TAG_CTRL)]

    def acknowledge(self) -> None:
        """ULFM: acknowledge the failures seen, so receives from any source work again."""
        for name in ("Ack_failed", "Failure_ack"):
            if hasattr(self._comm, name):
                try:
                    getattr(self._comm, name)()
                except (NotImplementedError, self._MPI.Exception):
                    pass
                return

    # -- receiving (the MPI lock held) --------------------------------------------------------

    def _take(self, tag: int) -> list[int]:
        return [src for src, _ in self._take_data(tag, keep=False)]

    def _take_data(self, tag: int, keep: bool = True) -> list[tuple[int, Any]]:
        MPI, comm, status = self._MPI, self._comm, self._status
        got = []
        misses = 0
        while misses < 2:  # this MPICH misses a waiting message on the first probe
            try:
                msg = comm.Improbe(MPI.ANY_SOURCE, tag, status)
            except MPI.Exception:
                if not self.ulfm:
                    raise
                self.acknowledge()  # a failure is pending: Get_failed reports it
                misses += 1
                continue
            if msg is None:
                misses += 1
                continue
            misses = 0
            n = status.Get_count(MPI.BYTE)
            data = bytearray(n) if keep or n > len(self._sink) else self._sink
            msg.Recv([data, n, MPI.BYTE])
            got.append((status.Get_source(), data))
        return got

    def _drain(self, src: int) -> bool:
        """Receive and drop what forgotten rank ``src`` sent; whether there was anything."""
        MPI, comm, status = self._MPI, self._comm, self._status
        any_ = False
        for tag in (TAG_HEADER, TAG_DATA):
            while True:
                try:
                    msg = comm.Improbe(src, tag, status)
                except MPI.Exception:  # ULFM: the process is gone
                    return any_
                if msg is None:
                    break
                any_ = True
                msg.Recv([bytearray(status.Get_count(MPI.BYTE)), MPI.BYTE])
        return any_

    def _failed(self) -> list[int]:
        if not self.ulfm:
            return []
        MPI, comm = self._MPI, self._comm
        try:
            group = comm.Get_failed()
        except (NotImplementedError, MPI.Exception):
            return []
        try:
            n = group.Get_size()
            if not n:
                return []
            mine = comm.Get_group()
            try:
                ranks = MPI.Group.Translate_ranks(group, list(range(n)), mine)
            finally:
                mine.Free()
        finally:
            group.Free()
        return [r for r in ranks if r != MPI.UNDEFINED and r != self.rank]
