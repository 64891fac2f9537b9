"""MPI transport: the only module of hpcdist that imports mpi4py (lazily, in the factory).

The wire format is in :mod:`~hpcdist.transports.mpiwire`, the launch's environment in :mod:`~hpcdist.transports.mpienv`.

Design (measurements behind it: the MPI transport notes of the project):

* The thread that calls :meth:`MPITransport.recv` is the communication thread (one at a time, see
  :meth:`MPITransport.interrupt`). Every MPI call is made under one lock. :meth:`~MPITransport.send`
  pickles the header outside it, appends the message to an ordered out-queue and, if the lock is
  free, posts the queue at once (a worker's executor posts its DONE without a hand-off); otherwise
  the comm thread posts it on its next turn. Only holders of the lock take from the queue (sends
  leave in order); the comm thread tests every posted request (a send from a thread that then
  stops calling MPI still completes).
* Wire: the header is pickled (highest protocol) together with the buffer sizes and sent as one
  message with ``TAG_HEADER``; each buffer follows as its own ``TAG_DATA`` message(s) via
  ``Isend`` of the memoryview (split over :data:`CHUNK_BYTES`). The receiver takes headers with
  ``Improbe`` + ``Message.Recv`` from any source, then that source's data messages into fresh
  ``np.empty(n, uint8)`` buffers: messages of one (source, tag) pair do not overtake each other.
* Every wake-up probes until two misses in a row: this MPICH misses a message that is already
  waiting on the first probe.
* Idle: poll at the shortest wait while there was traffic in the last :data:`SPIN_S`, then wait
  (a timed acquire of a lock that local senders release) for ``b`` doubling from
  :data:`POLL_MIN_S`, up to :data:`WARM_MAX_S` for :data:`WARM_S` after the last traffic, then up
  to the cap (``HPCDIST_POLL_MAX_MS``, default 5 ms): a local send wakes the thread at once, idle
  ranks cost ~1-2 % CPU. The comm thread asks Linux for a 1 µs timer slack (default 50 µs) and
  never blocks in MPI except in the ``Mrecv`` of a message already probed.
* The communicator is a ``Dup()`` of ``COMM_WORLD``: user code on COMM_WORLD cannot steal
  hpcdist's messages.
* Failure detection (:mod:`~hpcdist.transports.mpiwatch`): rank 0 watches every worker, a worker
  rank 0; received messages and posts are flag stores, a look every half heartbeat interval sends
  heartbeats and delivers a rank silent for ``HPCDIST_FAILURE_TIMEOUT`` s (or failed by ULFM, or
  that said :meth:`~MPITransport.goodbye`) as ``(rank, (PEER_LOST, reason), [])``, then forgets
  it. Rank 0 tells the survivors; a rank it declared lost that speaks again is told to go. After
  any loss :meth:`~MPITransport.close` skips ``MPI_Finalize`` (it would hang).
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import sys
import threading
import time
from collections import deque
from typing import Any, Sequence

from hpcdist.transports.base import PEER_LOST, Message, Transport
from hpcdist.transports.liveness import failure_timeout
from hpcdist.transports.mpisends import Posted
from hpcdist.transports.mpiwatch import Watch
from hpcdist.transports.mpiwire import TAG_CTRL, TAG_DATA, TAG_HEADER, Receiver
from hpcdist.transports.mpiworld import abort_all, describe_library, dup_within, leave, usable_world
from hpcdist.errors import TransportError
from hpcdist.transports.mpienv import poll_max_seconds, tighten_timer_slack

#: largest single MPI message; bigger buffers are split (site MPIs without large counts)
CHUNK_BYTES = 1 << 30
#: keep spinning this long after the last traffic
SPIN_S = 1e-3
#: first idle wait; it doubles up to the cap
POLL_MIN_S = 1e-5
#: for this long after the last traffic the idle wait stays under WARM_MAX_S
WARM_S = 0.1
WARM_MAX_S = 2e-4
#: close(): how long to wait for pending sends to complete
CLOSE_WAIT_S = 2.0
#: close(): MPI_Finalize waits for every rank; past this the process exits (faulthandler)
FINALIZE_TIMEOUT_S = 60.0
INIT_MARGIN_S = 5.0  # from_world(): seconds past the start-up timeout before a rank still in MPI_Init exits
#: sys.setswitchinterval on worker ranks, so a GIL-bound task delays the comm thread less
WORKER_SWITCH_INTERVAL = 0.001
_LOOPBACK = -1

def library_info() -> dict[str, Any]:
    """What MPI this process would use (:func:`~hpcdist.transports.mpiworld.describe_library`), for
    ``hpcdist doctor``; initialises MPI: run it in a throw-away process."""
    import mpi4py

    mpi4py.rc.thread_level = "multiple"
    from mpi4py import MPI

    return describe_library(MPI, mpi4py.__version__)


class MPITransport(Transport):
    """Transport over an MPI communicator; build it with :meth:`from_world`.

    Args:
        mpi: the ``mpi4py.MPI`` module.
        comm: a communicator of size >= 2 reserved for this transport (a ``Dup``).
        poll_max_s: cap of the idle wait in seconds.
        finalize: whether :meth:`close` calls ``MPI_Finalize`` (never after a rank was lost).
        failure_timeout_s: the failure detector's bound in seconds; None: no detector.
    """

    def __init__(self, mpi: Any, comm: Any, *, poll_max_s: float, finalize: bool = True,
                 failure_timeout_s: float | None = None) -> None:
        self._MPI = mpi
        self._comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        hosts_pids = comm.allgather((mpi.Get_processor_name(), os.getpid()))
        self._hosts: list[str] = [h for h, _ in hosts_pids]
        names = [f"rank {r} (pid {pid}) on {host}" for r, (host, pid) in enumerate(hosts_pids)]
        self._poll_max = poll_max_s
        self._finalize = finalize
        self._outq: deque[tuple] = deque()  # sends not posted yet; taken only under self._lock
        # A plain lock as a binary semaphore: senders release it, the comm thread waits in a timed
        # acquire (not a SimpleQueue: on CPython 3.11 its get(timeout=1e-5) stuck for seconds under load)
        self._wake = threading.Lock()
        self._wake.acquire()
        self._ready: deque[Message] = deque()
        self._posted = Posted(mpi, comm)  # Isend requests not completed yet
        self._lock = threading.RLock()  # held while making MPI calls
        self._owner: int | None = None  # thread ident of the comm thread (the latest recv caller)
        self._slack = threading.local()  # whether this thread's timer slack was tightened
        self._interrupted = False
        self._closed = False
        self._forgotten: frozenset[int] = frozenset()  # dead ranks; replaced whole, read without the lock
        self._declared: set[int] = set()  # rank 0: ranks it declared lost (told to go if they speak again)
        self._told: set[int] = set()  # ... and those told
        self._left = False  # a worker that said goodbye: abort() ends this process only
        self._ulfm_errors = 0  # MPI errors in a row that no newly failed process explained
        self._watch = None if failure_timeout_s is None else Watch(mpi, comm, failure_timeout_s, time.monotonic(), names)
        self._heard = self._watch.live.heard_flags if self._watch else [False] * self.size
        self._sent = self._watch.live.sent_flags if self._watch else [False] * self.size
        self._next_look = time.monotonic() + self._watch.period if self._watch else float("inf")
        self._last_activity = time.monotonic()
        self._backoff = POLL_MIN_S
        #: counters: messages and bytes (header + buffers) sent and received over MPI, and
        #: MPI data messages (buffer chunks) received
        self.stats = {"sent": 0, "received": 0, "bytes_sent": 0, "bytes_received": 0, "data_messages_received": 0}
        self._receiver = Receiver(mpi, comm, self.rank, self._ready, self.stats, self._heard)

    @classmethod
    def from_world(cls, *, poll_max_ms: float | None = None, finalize: bool = True,
                   startup_timeout_s: float = 60.0, failure_timeout_s: float | None = None,
                   detect: bool = True) -> "MPITransport":
        """Initialise MPI (thread level MULTIPLE) and connect over a Dup of COMM_WORLD.

        On workers this also sets ``sys.setswitchinterval`` to :data:`WORKER_SWITCH_INTERVAL`. If this
        call initialises MPI, it turns off mpi4py's at-exit ``MPI_Finalize``: call :meth:`close` on
        every rank at the end (a rank that exits without it ends the job).

        Args:
            poll_max_ms: cap of the idle wait; default ``HPCDIST_POLL_MAX_MS`` or 5 ms.
            finalize: whether :meth:`close` calls ``MPI_Finalize``.
            startup_timeout_s: how long to wait for every rank to join (they may run something else).
            failure_timeout_s: the detector's bound; default ``HPCDIST_FAILURE_TIMEOUT`` (2 s).
            detect: whether to run the failure detector (a rank that does not keep calling :meth:`recv`
                would be declared lost).

        Raises:
            HpcdistError: ``HPCDIST_FAILURE_TIMEOUT`` is not a positive number of seconds.
            TransportError: mpi4py is missing, MPI lacks thread support, the world has fewer than 2
                ranks, the program runs under ``python -m mpi4py.futures``, or the other ranks did not
                join within ``startup_timeout_s``.
        """
        bound = None if not detect else failure_timeout() if failure_timeout_s is None else failure_timeout_s
        try:
            import mpi4py
        except ImportError:
            raise TransportError(
                "the mpi backend needs mpi4py: pip install 'hpcdist[mpich]' or build mpi4py against the site MPI"
            ) from None
        if "mpi4py.MPI" not in sys.modules:
            mpi4py.rc.thread_level = "multiple"
            # no MPI_Finalize at exit: close() finalizes on the clean path, and a rank that dies
            # of an uncaught exception then ends the job at once instead of hanging in an
            # at-exit Finalize that waits for workers still serving
            mpi4py.rc.finalize = False
        # MPI_Init and the start-up collectives wait for every rank with the GIL held: past the start-up
        # timeout (and INIT_MARGIN_S) a C-level timer ends this process (status 1, its traceback).
        faulthandler.dump_traceback_later(startup_timeout_s + INIT_MARGIN_S, exit=True)
        try:
            return cls._init_waiting_for_every_rank(startup_timeout_s, poll_max_ms, finalize, bound)
        finally:
            faulthandler.cancel_dump_traceback_later()

    @classmethod
    def _init_waiting_for_every_rank(cls, startup_timeout_s: float, poll_max_ms: float | None, finalize: bool,
                                     bound: float | None) -> Any:
        from mpi4py import MPI

        if not MPI.Is_initialized():
            MPI.Init_thread(MPI.THREAD_MULTIPLE)
        world = usable_world(MPI)
        poll_max_s = poll_max_seconds() if poll_max_ms is None else poll_max_ms / 1000.0
        transport = cls(MPI, dup_within(world, startup_timeout_s), poll_max_s=poll_max_s, finalize=finalize,
                        failure_timeout_s=bound)
        if transport.rank > 0:
            sys.setswitchinterval(WORKER_SWITCH_INTERVAL)
        return transport

    # -- public interface -------------------------------------------------------------

    def send(self, dest: int, header: Any, buffers: Sequence[Any] = ()) -> None:
        """Queue a message; see :meth:`Transport.send`. Never blocks on the network."""
        if self._closed:
            raise TransportError(f"rank {self.rank}: send to rank {dest} after close()")
        self._check_dest(dest)
        dest = int(dest)
        if dest in self._forgotten:
            return
        if dest == self.rank:
            item: tuple = (_LOOPBACK, header, list(buffers), 0)
        else:
            try:
                raws = [pickle.PickleBuffer(b).raw() for b in buffers]
            except (BufferError, TypeError) as exc:
                raise TransportError(f"rank {self.rank}: buffer for rank {dest} is not a contiguous buffer: {exc}") from None
            try:
                chunk = CHUNK_BYTES
                data = pickle.dumps((header, [r.nbytes for r in raws], chunk), pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                raise TransportError(f"rank {self.rank}: header for rank {dest} cannot be pickled: {exc}") from exc
            item = (dest, data, raws, chunk)
        self._outq.append(item)
        owner = threading.get_ident() == self._owner
        kick = not owner
        if owner:
            self._lock.acquire()
        elif dest == self.rank or not self._lock.acquire(blocking=False):
            self._kick()  # the comm thread takes it (a loopback message, or MPI is busy)
            return
        try:
            if not self._closed:
                self._drain_outq()
                if not owner:
                    self._posted.test()
                    kick = bool(self._posted.reqs)  # a send still in flight needs the comm thread's progress
        except self._MPI.Exception as exc:
            raise TransportError(f"rank {self.rank}: MPI error posting a send to rank {dest}: {exc}") from exc
        finally:
            self._lock.release()
        if owner:
            self._last_activity = time.monotonic()  # a reply is likely: spin in the next recv
            self._backoff = POLL_MIN_S
        elif kick:
            self._kick()

    def interrupt(self) -> None:
        """Make the current or next :meth:`recv` return ``None`` (any thread)."""
        self._interrupted = True
        self._kick()

    def _kick(self) -> None:
        """Wake the comm thread from its idle wait (a pending wake-up is kept)."""
        try:
            self._wake.release()
        except RuntimeError:
            pass  # already released: the comm thread will wake anyway

    def recv(self, timeout: float | None) -> Message | None:
        """Next message, or None after ``timeout`` s; see :meth:`Transport.recv`."""
        self._owner = threading.get_ident()
        if not getattr(self._slack, "done", False):
            self._slack.done = True
            tighten_timer_slack()
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        MPIException = self._MPI.Exception
        while True:
            try:
                return self._recv_until(deadline)
            except MPIException as exc:
                if not self._survive():
                    raise TransportError(f"rank {self.rank}: MPI error in the comm thread: {exc}") from exc

    def _survive(self) -> bool:
        """After an MPI error in the comm thread: under ULFM a process failed; report it
        (``Get_failed``), acknowledge it and go on. False: the error stands."""
        if self._watch is None or not self._watch.ulfm:
            return False
        with self._lock:
            known = self._forgotten
            self._look(time.monotonic())
            self._watch.acknowledge()
            self._ulfm_errors = 0 if self._forgotten != known else self._ulfm_errors + 1
        return self._ulfm_errors < 1000  # the failure is seen within a few looks

    def _recv_until(self, deadline: float | None) -> Message | None:
        while True:
            if self._interrupted:
                self._interrupted = False
                return None
            with self._lock:
                if self._closed:
                    raise TransportError(f"rank {self.rank}: recv after close()")
                if self._ready:
                    self._drain_outq()
                    self._posted.test()
                    return self._ready.popleft()
                active = self._progress()
            now = time.monotonic()
            if now >= self._next_look:
                with self._lock:
                    self._look(now)
            if active:
                self._last_activity = now
                self._backoff = POLL_MIN_S
                if self._ready:
                    return self._ready.popleft()
            if deadline is not None and now >= deadline:
                return None
            if now - self._last_activity < SPIN_S or self._posted.reqs:
                # (also while our sends are pending: MPICH completes them only while this rank drives
                # progress). Hot: the shortest wait, in a blocking get that releases the GIL, so the
                # thread just handed work runs now (a pure busy loop here cost ~5 ms per hop).
                wait = POLL_MIN_S
            else:
                cap = self._poll_max if now - self._last_activity >= WARM_S else min(WARM_MAX_S, self._poll_max)
                wait = min(self._backoff, cap)
                self._backoff = min(self._backoff * 2, cap)
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - now))
            if self._wake.acquire(timeout=wait):  # woken by a local send: a reply is likely
                self._last_activity = time.monotonic()
                self._backoff = POLL_MIN_S

    def forget(self, rank: int) -> None:
        """Drop ``rank`` (dead): sends to it are dropped, its posted sends freed, what it sends
        later discarded; it is no longer watched and :meth:`close` skips ``MPI_Finalize``."""
        self._check_dest(rank)
        if rank == self.rank:
            return
        with self._lock:
            self._forget(rank)

    @property
    def failed(self) -> bool:
        """Whether a rank was lost or forgotten (then :meth:`close` skips ``MPI_Finalize``)."""
        return bool(self._forgotten)

    def host_of(self, rank: int) -> str:
        """Host name of ``rank`` (MPI_Get_processor_name, exchanged at start-up)."""
        self._check_dest(rank)
        return self._hosts[rank]

    def close(self) -> None:
        """Flush queued sends, wait up to :data:`CLOSE_WAIT_S` for them, free the communicator and
        (unless ``finalize=False``) call ``MPI_Finalize`` (it waits for every rank; after
        :data:`FINALIZE_TIMEOUT_S` the process exits via faulthandler). After a rank was lost or
        forgotten neither (a collective would hang): the process ends at its own exit. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._drain_outq()
                if self._watch is not None:
                    for _, msg in self._watch.read_ctrl():  # a last word from rank 0 of a lost peer
                        if msg[0] == "lost" and msg[1] != self.rank:
                            self._forget(msg[1])
                self._posted.wait(CLOSE_WAIT_S)
            finally:
                self._release()

    def goodbye(self, reason: str, wait_s: float = 0.2) -> bool:
        """A worker's last word (see :meth:`Transport.goodbye`): ``("bye", reason)`` on ``TAG_CTRL`` to
        rank 0 after this rank's queued sends, waiting up to ``wait_s`` for them all to complete."""
        deadline = time.monotonic() + wait_s
        if (self.rank == 0 or self._watch is None or self._closed or 0 in self._forgotten
                or not self._lock.acquire(timeout=wait_s)):
            return False
        try:  # after what this rank sent before (rank 0 takes that first: Receiver.settle)
            self._drain_outq()
            self._left = True
            self._posted.post(0, pickle.dumps(("bye", reason), pickle.HIGHEST_PROTOCOL), TAG_CTRL)
            self._posted.wait(max(0.0, deadline - time.monotonic()))
        finally:
            self._lock.release()
        return True

    def abort(self, code: int = 1) -> None:
        """``MPI_Abort`` on COMM_WORLD from any thread: every rank of the job dies (after
        ABORT_FLUSH_S, for this rank's last words; see :func:`~hpcdist.transports.mpiworld.abort_all`).
        A worker that said :meth:`goodbye` ends its own process only: rank 0 goes on without it."""
        if self._left:
            leave(code)
        abort_all(self._MPI, code)

    # -- comm-thread internals (called with self._lock held) ----------------------------

    def _release(self) -> None:
        MPI = self._MPI
        self._posted.clear()
        if self._forgotten:
            return  # a rank died: Comm_free and Finalize are collectives that would wait for it
        try:
            self._comm.Free()
        except MPI.Exception:
            pass  # already freed or MPI finalized elsewhere
        if self._finalize and MPI.Is_initialized() and not MPI.Is_finalized():
            # Finalize waits for every rank with the GIL held: only a C-level timer ends a hang
            faulthandler.dump_traceback_later(FINALIZE_TIMEOUT_S, exit=True)
            try:
                MPI.Finalize()
            finally:
                faulthandler.cancel_dump_traceback_later()

    # -- failure detection (called with self._lock held) ---------------------------------

    def _look(self, now: float) -> None:
        """Heartbeats out and in, control messages, silent ranks (see :class:`Watch`)."""
        watch = self._watch
        self._next_look = now + watch.period
        beats, lost, ctrl, spoke = watch.look(now, self._forgotten)
        for dest in beats:
            self._posted.post(dest, watch.beat, watch.TAG_BEAT)
        for src, msg in ctrl:
            if msg[0] == "lost" and msg[1] != self.rank:  # rank 0 lost a peer: so do we (no Finalize)
                self._forget(msg[1])
            elif msg[0] == "exit" and src == 0:  # rank 0 declared us lost: the runtime ends us
                self._lose(0, f"rank 0 declared this rank ({self.rank}) lost ({msg[1]}); exiting")
            elif msg[0] == "bye" and self.rank == 0:  # a worker ends on purpose: what it sent first, then its loss
                self._receiver.settle(src)
                self._lose(src, f"{watch.names[src]}: {msg[1]}")
        for rank, reason in lost:
            self._lose(rank, reason)
        if self._receiver.spoke:
            spoke = sorted(set(spoke) | self._receiver.spoke)
            self._receiver.spoke.clear()
        for rank in spoke:
            self._spoke(rank)

    def _lose(self, rank: int, reason: str) -> None:
        """Deliver ``rank``'s loss after what it sent before, and forget it; rank 0 tells the survivors."""
        if rank in self._forgotten:
            return
        self._forget(rank)
        self._ready.append((rank, (PEER_LOST, reason), []))
        if self.rank == 0:
            self._declared.add(rank)
            notice = pickle.dumps(("lost", rank, reason), pickle.HIGHEST_PROTOCOL)
            for dest in range(1, self.size):
                if dest not in self._forgotten:
                    self._posted.post(dest, notice, TAG_CTRL)

    def _spoke(self, rank: int) -> None:
        """A forgotten rank sent something: one rank 0 declared lost is told, once, to go."""
        if self.rank == 0 and rank in self._declared and rank not in self._told:
            self._told.add(rank)
            self._posted.post_untracked(
                rank, pickle.dumps(("exit", "no heartbeat within the bound"), pickle.HIGHEST_PROTOCOL), TAG_CTRL)

    def _forget(self, rank: int) -> None:
        if rank in self._forgotten:
            return
        self._forgotten = self._forgotten | {rank}
        self._receiver.forgotten = self._forgotten
        self._receiver.drop(rank)
        if self._watch is not None:
            self._watch.live.unwatch(rank)
        self._posted.free_to(rank)

    def _drain_outq(self) -> int:
        posted = 0
        outq = self._outq
        while outq:  # callers hold self._lock, the only way to take items: none can vanish
            try:
                self._post(outq.popleft())
            except self._MPI.Exception:
                if self._watch is None or not self._watch.ulfm:
                    raise
                # ULFM: its destination failed; the next look reports it
            posted += 1
        return posted

    def _post(self, item: tuple) -> None:
        dest, data, bufs, chunk = item
        if self._forgotten and dest in self._forgotten:
            return
        if dest == _LOOPBACK:
            self._ready.append((self.rank, data, bufs))
            return
        comm, BYTE, track = self._comm, self._MPI.BYTE, self._posted.track
        self._sent[dest] = True
        track(comm.Isend([data, BYTE], dest, TAG_HEADER), data, dest)
        nbytes = len(data)
        for raw in bufs:
            n = raw.nbytes
            for off in range(0, n, chunk):
                part = raw[off : off + chunk]
                track(comm.Isend([part, BYTE], dest, TAG_DATA), part, dest)
            nbytes += n
        self.stats["sent"] += 1
        self.stats["bytes_sent"] += nbytes

    def _progress(self) -> bool:
        """One round: post queued sends, test requests, receive. True if anything moved."""
        posted = self._drain_outq()
        self._posted.test()
        receiver = self._receiver
        received = receiver.data()
        received += receiver.headers()
        if received:
            received += receiver.data()  # the buffers of headers just taken are often there
        return bool(posted or received)
