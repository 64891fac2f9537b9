"""Tests of the in-process transport: ordering, loopback, buffer copies, timeouts, threads, abort."""

import socket
import threading
import time

import numpy as np
import pytest

from hpcdist.transports.base import Transport
from hpcdist.transports.inproc import InprocHub
from hpcdist.errors import TransportError
from hpcdist.runtime.serialize import dumps, loads


def test_endpoints_are_transports_with_rank_and_size():
    hub = InprocHub(3)
    eps = [hub.endpoint(r) for r in range(3)]
    assert all(isinstance(e, Transport) for e in eps)
    assert [(e.rank, e.size) for e in eps] == [(0, 3), (1, 3), (2, 3)]
    assert hub.endpoint(1) is eps[1]
    assert eps[0].host_of(2) == socket.gethostname()
    with pytest.raises(TransportError, match="not in an in-process world of size 3"):
        hub.endpoint(3)


def test_messages_arrive_in_order_with_source():
    hub = InprocHub(2)
    a, b = hub.endpoint(0), hub.endpoint(1)
    for i in range(100):
        a.send(1, ("task", i))
    got = [b.recv(1) for _ in range(100)]
    assert got == [(0, ("task", i), []) for i in range(100)]


def test_buffers_are_copied_for_another_rank():
    hub = InprocHub(3)
    a, b, c = (hub.endpoint(r) for r in range(3))
    arr = np.arange(10_000, dtype=np.int64)
    data, bufs = dumps(arr)
    a.send(1, ("x", data), bufs)
    a.send(2, ("x", data), bufs)
    _, (_, d1), b1 = b.recv(1)
    _, (_, d2), b2 = c.recv(1)
    x1, x2 = loads(d1, b1), loads(d2, b2)
    assert isinstance(b1[0], np.ndarray) and b1[0].dtype == np.uint8
    assert np.shares_memory(x1, b1[0])  # zero copy on the receiving side
    x1[0] = -1  # a task mutating its input ...
    assert x2[0] == 0 and arr[0] == 0  # ... changes neither the other worker's copy nor the sender's
    assert not np.shares_memory(x1, arr)


def test_recv_timeout_returns_none():
    hub = InprocHub(2)
    b = hub.endpoint(1)
    assert b.recv(0) is None
    t0 = time.monotonic()
    assert b.recv(0.05) is None
    assert 0.04 <= time.monotonic() - t0 < 1.0


def test_concurrent_senders_keep_per_sender_order():
    hub = InprocHub(5)
    sink = hub.endpoint(0)
    n = 500

    def worker(rank):
        ep = hub.endpoint(rank)
        for i in range(n):
            ep.send(0, (rank, i), [np.full(3, i, np.int16)])

    threads = [threading.Thread(target=worker, args=(r,)) for r in range(1, 5)]
    for t in threads:
        t.start()
    nxt = {r: 0 for r in range(1, 5)}
    for _ in range(4 * n):
        src, (rank, i), bufs = sink.recv(5)
        assert src == rank and i == nxt[rank]
        assert np.frombuffer(bufs[0], np.int16).tolist() == [i, i, i]
        nxt[rank] += 1
    for t in threads:
        t.join()
    assert sink.recv(0) is None


def test_abort_wakes_blocked_receivers_and_closes_everything():
    hub = InprocHub(3)
    eps = [hub.endpoint(r) for r in range(3)]
    errors = []

    def blocked(ep):
        try:
            ep.recv(None)
        except TransportError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=blocked, args=(eps[r],)) for r in (1, 2)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    eps[0].abort(3)  # returns: the caller's error path goes on
    for t in threads:
        t.join(2)
    assert sorted(errors) == [
        f"rank {r}: the in-process world was aborted by rank 0 with code 3" for r in (1, 2)
    ]
    with pytest.raises(TransportError, match="aborted"):
        eps[0].send(1, ("x",))
    with pytest.raises(TransportError, match="aborted"):
        eps[0].recv(0)


def test_close_is_idempotent_and_drops_later_messages():
    hub = InprocHub(2)
    a, b = hub.endpoint(0), hub.endpoint(1)
    b.close()
    b.close()
    a.send(1, ("late",))  # dropped, no error
    with pytest.raises(TransportError, match="after close"):
        b.recv(0)
    with pytest.raises(TransportError, match="after close"):
        b.send(0, ("x",))
