"""The pipe transport, its endpoints all in this process."""

from __future__ import annotations

import multiprocessing
import threading
import time

import numpy as np
import pytest

from hpcdist.transports.base import PEER_LOST
from hpcdist.transports.pipe import DIRECT_MAX, PipeTransport
from hpcdist.errors import TransportError
from hpcdist.runtime import serialize


def mesh(size):
    """Endpoints of a pipe mesh of ``size`` ranks, all in this process."""
    ends = {r: {} for r in range(size)}
    for i in range(size):
        for j in range(i + 1, size):
            a, b = multiprocessing.Pipe(duplex=True)
            ends[i][j], ends[j][i] = a, b
    return [PipeTransport(r, size, ends[r]) for r in range(size)]


@pytest.fixture
def trio():
    ts = mesh(3)
    yield ts
    for t in ts:
        t.close()


def test_order_header_and_buffers(trio):
    a, b, _ = trio
    for i in range(200):
        a.send(1, ("msg", i), [np.full(i % 5 * 300, i % 256, dtype=np.uint8)])
    for i in range(200):
        src, header, bufs = b.recv(5)
        assert src == 0 and header == ("msg", i)
        assert len(bufs) == 1 and isinstance(bufs[0], np.ndarray) and bufs[0].dtype == np.uint8
        assert bufs[0].flags.writeable and bufs[0].nbytes == i % 5 * 300
        assert np.all(bufs[0] == i % 256)


def test_big_buffers_use_the_writer_thread_and_arrive_whole(trio):
    a, b, _ = trio
    arr = np.random.default_rng(0).random(4_000_000)  # 32 MB, far more than a socket buffer
    data, buffers = serialize.dumps(arr)
    a.send(1, ("big", data, len(buffers)), buffers)  # must not block although nobody reads yet
    assert a.stats["queued"] >= 1
    src, (kind, data2, nbuf), bufs = b.recv(10)
    out = serialize.loads(data2, bufs[:nbuf])
    assert np.array_equal(out, arr)
    assert np.shares_memory(out, bufs[0])  # rebuilt on the receive buffer, not copied again


def test_small_messages_go_directly(trio):
    a, b, _ = trio
    a.send(2, ("small",), [np.zeros(DIRECT_MAX // 2, dtype=np.uint8)])
    assert a.stats["queued"] == 0 and a.stats["sent"] == 1


def test_loopback_is_by_reference_and_wakes_a_waiting_recv(trio):
    a = trio[0]
    header, buf = ("self", [1, 2]), bytearray(b"xyz")
    got = []
    t = threading.Thread(target=lambda: got.append(a.recv(5)))
    t.start()
    time.sleep(0.1)
    a.send(0, header, [buf])
    t.join(5)
    assert got and got[0][0] == 0 and got[0][1] is header and got[0][2][0] is buf


def test_worker_to_worker_bypasses_rank_0(trio):
    a, b, c = trio
    b.send(2, ("have",), [np.ones(1 << 20)])
    src, header, bufs = c.recv(5)
    assert src == 1 and header == ("have",) and bufs[0].nbytes == 8 << 20
    assert a.stats["received"] == 0 and a.stats["sent"] == 0


def test_recv_timeout_and_bad_destination(trio):
    a = trio[0]
    start = time.monotonic()
    assert a.recv(0.2) is None
    assert 0.15 < time.monotonic() - start < 2
    assert a.recv(0) is None
    with pytest.raises(TransportError, match="destination 3"):
        a.send(3, ("x",))


def test_goodbye_is_quiet_and_a_dead_peer_is_an_event_on_rank_0():
    a, b, c = mesh(3)
    b.close()  # says goodbye: no error on the others
    assert a.recv(0.1) is None and c.recv(0.1) is None
    a.send(1, ("to the departed",))  # dropped, like the in-process transport
    with pytest.raises(TransportError, match="after close"):
        b.send(0, ("x",))
    c._peers[0].conn.close()  # rank 2 "dies": no goodbye; rank 0 hears of it once, as an event
    src, header, bufs = a.recv(2)
    assert (src, header[0], bufs) == (2, PEER_LOST, []) and "rank 2" in header[1]
    a.send(2, ("to the dead",))  # dropped, not raised
    assert a.recv(0.1) is None
    a._peers[2].conn.close()  # rank 0 "dies": the worker of rank 2 must fail
    with pytest.raises(TransportError, match="lost the connection to rank 0"):
        c.recv(2)
    a.close()
    c.close()


def test_abort_on_rank_0_fails_recv():
    a, b = mesh(2)
    a.abort(3)
    with pytest.raises(TransportError, match="aborted with code 3"):
        a.recv(0)
    with pytest.raises(TransportError, match="lost the connection"):
        b.recv(2)


def test_a_workers_last_word_is_the_reason_rank_0_reports_after_what_it_sent_before():
    a, b, c = mesh(3)
    b.send(0, ("result", 1))
    assert b.goodbye("the task 'k' called os._exit(3)") is True
    assert a.goodbye("rank 0 says nothing") is False  # only workers have a last word
    b._peers[0].conn.close()  # then the process ends
    assert a.recv(2)[1] == ("result", 1)
    src, header, bufs = a.recv(2)
    assert (src, header[0], bufs) == (1, PEER_LOST, [])
    assert header[1] == "rank 1: the task 'k' called os._exit(3)"
    c._peers[0].conn.close()  # no last word: as before
    src, header, _ = a.recv(2)
    assert src == 2 and header[1] == "rank 2: the connection was lost (the process died?)"
    a.close()
    c.close()
