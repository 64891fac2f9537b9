"""The runtime's hooks: what a worker and rank 0 record, and that without a trace directory nothing wraps."""

from __future__ import annotations

from types import SimpleNamespace

from hpcdist.runtime import messages as m
from hpcdist.runtime import tracing
from hpcdist.runtime.worker import Worker
from hpcdist.trace.format import FETCH, LOST, PLACE, RUN, read_sessions


class FakeTransport:
    rank, size = 1, 3

    def host_of(self, rank: int) -> str:
        return "h"

    def send(self, dest, header, buffers=()) -> None:
        pass

    def interrupt(self) -> None:
        pass


def test_without_a_trace_directory_the_loops_keep_their_own_methods(monkeypatch):
    monkeypatch.delenv("HPCDIST_TRACE_DIR", raising=False)
    assert Worker(FakeTransport()).trace is None
    flush, send = FakeTransport().interrupt, FakeTransport().send
    trace, kept, kept_send = tracing.scheduler_hooks(FakeTransport(), flush, send, {})
    assert trace is None and kept is flush and kept_send is send


def test_a_worker_records_each_run_and_each_fetch_with_its_bytes_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCDIST_TRACE_DIR", str(tmp_path))
    worker = Worker(FakeTransport())
    trace = worker.trace
    seen = []

    def on_compute(src, header, buffers):  # as the worker's: asks a peer for the inputs it lacks
        for entry in header[1]:
            worker.requested.update({dep: (2, [2]) for dep in entry[5]})

    def on_have(src, header, buffers):
        seen.append(header)
        for key, _, _ in header[1]:
            worker.requested.pop(key, None)

    handlers = trace.handlers({m.COMPUTE: on_compute, m.HAVE: on_have, m.FREE: print})
    assert handlers[m.FREE] is print
    handlers[m.COMPUTE](0, (m.COMPUTE, [("t", "fn", None, b"", 0, {"dep": [2], "stolen": [2]})], None, None), [])
    handlers[m.HAVE](2, (m.HAVE, [("dep", b"12345", 1), ("lost", None, 0)]), [b"abcdefgh"])
    assert len(seen) == 1  # the worker's own handler still ran
    (fetch,) = trace.recorder.events
    assert fetch[0] == FETCH and fetch[3:] == ("dep", 5 + 8, 2) and fetch[1] <= fetch[2]
    run, idle = trace.hooks(lambda task: None, lambda: seen.append("idle"))
    run(SimpleNamespace(key="t", fn_id="fn"))
    idle()
    assert seen[-1] == "idle"
    assert trace.recorder.events[-1][0] == RUN and trace.recorder.events[-1][3:] == ("t", "fn")
    worker.requested.pop("stolen")  # its task was stolen: no longer awaited
    trace.close()
    assert trace.asked == {}
    (session,) = read_sessions(tmp_path / "rank-1.trace")
    assert sorted(e[0] for e in session.events) == [RUN, FETCH]
    assert session.header["role"] == "worker" and "executor_tid" in session.header


def test_rank_0_records_each_compute_message_it_sends_and_each_loss(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCDIST_TRACE_DIR", str(tmp_path))
    transport = FakeTransport()
    transport.rank = 0
    compute = {1: ([("k1",), ("k2",)], []), 2: ([("k3",)], [])}
    sent = []

    def send_computes(rank):
        sent.append(rank)
        compute.pop(rank)

    def flush():
        for rank in sorted(compute):
            traced_send(rank)

    trace, traced, traced_send = tracing.scheduler_hooks(transport, flush, send_computes, compute)
    traced()
    traced()  # nothing to send: no event
    trace.lost(2, "rank 2 died")
    assert sent == [1, 2]
    events = trace.recorder.events
    assert [(e[0], e[3], e[4]) for e in events[:2]] == [(PLACE, 1, ["k1", "k2"]), (PLACE, 2, ["k3"])]
    assert events[0][1] <= events[0][2] and events[2][0] == LOST and events[2][2:] == (2, "rank 2 died")
    tracing.close(trace)
    tracing.close(None)
    (session,) = read_sessions(tmp_path / "rank-0.trace")
    assert len(session.events) == 3 and session.header["size"] == 3
