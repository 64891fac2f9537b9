"""The Transport contract (hpcdist/transports/base.py) as checks that every transport must pass.

Each check is a function ``check(t)`` run on every rank of one world at once (SPMD): in this
process one thread per rank (tests/transports/test_contract.py), under MPI one process per rank
(tests/mpi/transport_contract.py). A check asserts what its rank sees; every wait has a timeout,
so a broken transport fails instead of hanging. Worlds have :data:`SIZE` ranks. After each check
(but the last, which closes) every rank must have no message left (:func:`leftovers`).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Callable

import numpy as np

from hpcdist.errors import TransportError
from hpcdist.runtime.serialize import dumps, loads
from hpcdist.transports import base
from hpcdist.transports.base import DroppedBuffer, Transport

SIZE = 3
#: seconds any single expected message may take
WAIT_S = 60.0

Check = Callable[[Transport], None]
CHECKS: dict[str, Check] = {}


def check(fn: Check) -> Check:
    CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


def expect(t: Transport, timeout: float = WAIT_S) -> tuple:
    msg = t.recv(timeout)
    assert msg is not None, f"rank {t.rank}: no message within {timeout} s"
    return msg


def received_buffer_ok(buf, nbytes: int) -> None:
    """A received buffer is a writable, contiguous uint8 ndarray or memoryview of ``nbytes``."""
    view = memoryview(buf)
    assert view.contiguous and not view.readonly, f"{type(buf).__name__} readonly={view.readonly}"
    assert view.nbytes == nbytes, (view.nbytes, nbytes)
    if isinstance(buf, np.ndarray):
        assert buf.dtype == np.uint8, buf.dtype


def leftovers(t: Transport) -> int:
    """Messages still arriving for ``t`` once every rank has finished a check (there should be none)."""
    n = 0
    while t.recv(0.1) is not None:
        n += 1
    return n


# -- the checks, in the order the MPI driver runs them (close last) --------------------------


@check
def check_rank_size_and_hosts(t: Transport) -> None:
    assert isinstance(t, Transport)
    assert t.size == SIZE and 0 <= t.rank < t.size
    for r in range(t.size):
        host = t.host_of(r)
        assert isinstance(host, str) and host
    for bad in (t.size, -1):
        try:
            t.host_of(bad)
        except TransportError:
            pass
        else:
            raise AssertionError(f"rank {t.rank}: host_of({bad!r}) accepted")
    for bad in (t.size, -1, True, 1.0):
        try:
            t.send(bad, ("x",))
        except TransportError as exc:
            assert f"destination {bad!r} is not a rank of a world of size {t.size}" in str(exc), exc
        else:
            raise AssertionError(f"rank {t.rank}: send to {bad!r} accepted")


@check
def check_loopback_delivers_the_same_objects(t: Transport) -> None:
    header = ("self", [t.rank])
    buf = memoryview(bytearray(b"xyz"))
    t.send(t.rank, header, [buf])
    src, got, bufs = t.recv(0)  # there at once: a poll finds it
    assert src == t.rank and got is header and bufs[0] is buf


@check
def check_order_per_pair_with_source(t: Transport) -> None:
    n = 200
    for i in range(n):
        for dest in range(t.size):
            if dest != t.rank:
                t.send(dest, ("seq", t.rank, i), [np.full(i % 7 * 100, i % 256, np.uint8)])
    nxt = defaultdict(int)
    for _ in range(n * (t.size - 1)):
        src, (kind, sender, i), bufs = expect(t)
        assert kind == "seq" and src == sender != t.rank
        assert i == nxt[src], (src, i, nxt[src])
        received_buffer_ok(bufs[0], i % 7 * 100)
        assert bytes(bufs[0]) == bytes([i % 256]) * (i % 7 * 100)
        nxt[src] += 1
    assert dict(nxt) == {r: n for r in range(t.size) if r != t.rank}


@check
def check_out_of_band_buffers_arrive_intact_and_zero_copy(t: Transport) -> None:
    arr = np.arange(50_000, dtype=np.float64)
    fortran = np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4))
    if t.rank == 0:
        data, bufs = dumps(arr)
        for dest in range(1, t.size):
            t.send(dest, ("arr", data, len(bufs)), [*bufs, b"", bytearray(b"raw bytes"), fortran])
        for _ in range(1, t.size):
            src, (kind, echoed), bufs = expect(t)
            assert kind == "echo" and np.array_equal(np.frombuffer(bufs[0], np.float64), arr * 2)
        return
    src, (kind, data, nbuf), bufs = expect(t)
    assert src == 0 and kind == "arr" and len(bufs) == nbuf + 3
    out = loads(data, bufs[:nbuf])
    assert np.array_equal(out, arr)
    if isinstance(bufs[0], np.ndarray):
        assert np.shares_memory(out, bufs[0])  # rebuilt on the receive buffer, not copied
    received_buffer_ok(bufs[nbuf], 0)
    received_buffer_ok(bufs[nbuf + 1], 9)
    assert bytes(bufs[nbuf + 1]) == b"raw bytes"
    received_buffer_ok(bufs[nbuf + 2], fortran.nbytes)
    assert bytes(bufs[nbuf + 2]) == fortran.tobytes(order="A")  # memory order
    out *= 2  # the buffer is the receiver's own: writable, and sendable on
    t.send(0, ("echo", True), [out])


@check
def check_large_buffer_arrives_whole(t: Transport) -> None:
    big = np.random.default_rng(7).random(4_000_000)  # 32 MB, far more than any socket buffer
    if t.rank == 1:
        data, bufs = dumps(big)
        t.send(2, ("big", data, len(bufs)), bufs)
        t.send(2, ("after",))
    elif t.rank == 2:
        src, (kind, data, nbuf), bufs = expect(t)
        assert src == 1 and kind == "big"
        assert np.array_equal(loads(data, bufs[:nbuf]), big)
        assert expect(t)[1] == ("after",)


@check
def check_worker_to_worker(t: Transport) -> None:
    if t.rank == 1:
        t.send(2, ("have", 1), [np.ones(1 << 17)])
    elif t.rank == 2:
        src, header, bufs = expect(t)
        assert src == 1 and header == ("have", 1) and memoryview(bufs[0]).nbytes == 8 << 17


@check
def check_recv_timeout_returns_none(t: Transport) -> None:
    assert t.recv(0) is None
    start = time.monotonic()
    assert t.recv(0.2) is None
    elapsed = time.monotonic() - start
    assert 0.15 <= elapsed < 10, elapsed


@check
def check_interrupt_makes_a_waiting_recv_return_none(t: Transport) -> None:
    got = []
    waiter = threading.Thread(target=lambda: got.append(t.recv(None)), daemon=True)
    waiter.start()
    time.sleep(0.2)
    assert waiter.is_alive() and not got  # it is waiting
    start = time.monotonic()
    t.interrupt()
    waiter.join(10)
    assert not waiter.is_alive(), f"rank {t.rank}: recv(None) still waiting 10 s after interrupt()"
    assert got == [None] and time.monotonic() - start < 10


@check
def check_interrupt_before_recv_returns_none_once_and_loses_nothing(t: Transport) -> None:
    t.interrupt()
    start = time.monotonic()
    assert t.recv(30) is None and time.monotonic() - start < 10
    assert t.recv(0) is None  # one interrupt, one None
    t.interrupt()
    t.send(t.rank, ("kept",))
    assert t.recv(30) is None
    assert expect(t, 10)[1] == ("kept",)


@check
def check_dropped_buffer_when_memory_runs_out(t: Transport) -> None:
    n = 3_000_000
    if t.rank == 1:
        real, refused = base.allocate, []

        def scarce(nbytes):
            if nbytes == n and not refused:
                refused.append(nbytes)
                raise MemoryError("simulated")
            return real(nbytes)

        base.allocate = scarce
        try:
            t.send(0, ("ready",))
            src, header, bufs = expect(t)
            assert src == 0 and header == ("three",) and len(bufs) == 3
            dropped = base.dropped_in(bufs)
            assert type(dropped) is DroppedBuffer and dropped is bufs[1]
            assert dropped.nbytes_refused == n and "MemoryError: simulated" in dropped.describe()
            assert bytes(bufs[0]) == b"a" * 10 and bytes(bufs[2]) == b"c" * 10
            src, header, bufs = expect(t)  # the stream goes on intact
            assert header == ("next",) and bytes(bufs[0]) == b"d" * n
        finally:
            base.allocate = real
    elif t.rank == 0:
        assert expect(t)[1] == ("ready",)
        t.send(1, ("three",), [b"a" * 10, b"b" * n, b"c" * 10])
        t.send(1, ("next",), [b"d" * n])


@check
def check_send_is_thread_safe(t: Transport) -> None:
    n, nthreads = 100, 4

    def sender(k: int) -> None:
        for i in range(n):
            for dest in range(t.size):
                if dest != t.rank:
                    t.send(dest, ("t", k, i), [np.full(16, i, np.int32)])

    threads = [threading.Thread(target=sender, args=(k,), daemon=True) for k in range(nthreads)]
    for th in threads:
        th.start()
    nxt = defaultdict(int)
    for _ in range(n * nthreads * (t.size - 1)):
        src, (kind, k, i), bufs = expect(t)
        assert kind == "t" and i == nxt[src, k], (src, k, i, nxt[src, k])  # each thread's order kept
        assert np.frombuffer(bufs[0], np.int32).tolist() == [i] * 16
        nxt[src, k] += 1
    for th in threads:
        th.join(WAIT_S)
        assert not th.is_alive()
    assert len(nxt) == nthreads * (t.size - 1) and set(nxt.values()) == {n}


@check
def check_forget_drops_sends_to_a_dead_rank(t: Transport) -> None:
    # rank 0 forgets rank 2 (as after rank 2 was lost); rank 1 stands for the survivors
    if t.rank == 0:
        t.forget(2)
        t.forget(2)  # idempotent
        t.send(2, ("to the forgotten",))
        t.send(1, ("to a survivor",))
    elif t.rank == 1:
        assert expect(t)[:2] == (0, ("to a survivor",))
    else:
        assert t.recv(0.5) is None, f"rank {t.rank} got a message rank 0 sent after forgetting it"


@check
def check_messages_from_a_forgotten_rank_are_discarded(t: Transport) -> None:
    # rank 2 speaks again once rank 0 has forgotten it (on MPI: again, as in the check before)
    if t.rank == 0:
        t.forget(2)
        t.send(1, ("forgot 2",))
        assert t.recv(1.0) is None, "rank 0 got a message from the rank it forgot"
    elif t.rank == 1:
        assert expect(t)[:2] == (0, ("forgot 2",))
        t.send(2, ("speak",))
    else:
        assert expect(t)[:2] == (1, ("speak",))
        t.send(0, ("from the forgotten",), [np.arange(1000, dtype=np.uint8)])
        t.send(0, ("again",))


@check
def check_close_is_idempotent_and_final(t: Transport) -> None:
    t.close()
    t.close()
    for use in (lambda: t.send((t.rank + 1) % t.size, ("late",)), lambda: t.recv(0)):
        try:
            use()
        except TransportError:
            pass
        else:
            raise AssertionError(f"rank {t.rank}: the transport still works after close()")
