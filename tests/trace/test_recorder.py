"""The recorder: where the trace goes (or that there is none), flushes, and appends from two threads."""

from __future__ import annotations

import logging
import threading

import pytest

from hpcdist.errors import HpcdistError
from hpcdist.paths import trace_file
from hpcdist.trace import recorder as rec_mod
from hpcdist.trace.format import RUN, read_sessions
from hpcdist.trace.recorder import Recorder, open_recorder, trace_dir


@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"HPCDIST_TRACE": "on"}, None),  # on, but nowhere to go
    ({"HPCDIST_TRACE_DIR": "/x/trace"}, "/x/trace"),
    ({"HPCDIST_TRACE_DIR": "/x/trace", "HPCDIST_TRACE": "on"}, "/x/trace"),
    ({"HPCDIST_TRACE_DIR": "/x/trace", "HPCDIST_TRACE": "off"}, None),
    ({"HPCDIST_TRACE_DIR": "/x/trace", "HPCDIST_TRACE": "0"}, None),
    ({"HPCDIST_TRACE_DIR": "  ", "HPCDIST_TRACE": "on"}, None),
])
def test_trace_dir_follows_the_environment(env, expected):
    got = trace_dir(env)
    assert (None if got is None else str(got)) == expected


def test_a_bad_switch_is_an_error():
    with pytest.raises(HpcdistError, match="HPCDIST_TRACE='maybe'"):
        trace_dir({"HPCDIST_TRACE": "maybe", "HPCDIST_TRACE_DIR": "/x"})


def test_off_means_no_recorder_and_no_file(tmp_path):
    assert open_recorder(1, "worker", environ={"HPCDIST_TRACE_DIR": str(tmp_path), "HPCDIST_TRACE": "off"}) is None
    assert open_recorder(1, "worker", environ={}) is None
    assert list(tmp_path.iterdir()) == []


def test_a_recorder_writes_its_header_then_its_events_and_names_once(tmp_path):
    names = {"f1": "m.one"}
    rec = open_recorder(3, "worker", "node-a", describe=lambda: dict(names),
                        environ={"HPCDIST_TRACE_DIR": str(tmp_path / "trace")}, executor_tid=77)
    assert rec is not None and rec.path == trace_file(tmp_path / "trace", 3)
    rec.events.append((RUN, 10, 20, "k1", "f1"))
    rec.flush()
    names["f2"] = "m.two"
    rec.events.append((RUN, 30, 40, "k2", "f2"))
    rec.close()
    rec.close()  # idempotent
    rec.events.append((RUN, 50, 60, "late", "f2"))
    rec.flush()  # after close: dropped, so a closed recorder never grows
    assert rec.events == []
    (session,) = read_sessions(rec.path)
    assert session.header["rank"] == 3 and session.header["host"] == "node-a"
    assert session.header["executor_tid"] == 77 and session.header["role"] == "worker"
    assert set(session.header["clock"]) == {"wall_ns", "perf_ns"}
    assert session.events == [(RUN, 10, 20, "k1", "f1"), (RUN, 30, 40, "k2", "f2")]
    assert session.functions == {"f1": "m.one", "f2": "m.two"}
    assert rec.events_written == 2 and rec.bytes_written == rec.path.stat().st_size


def test_idle_flush_waits_for_its_interval(tmp_path, monkeypatch):
    rec = Recorder(tmp_path / "rank-1.trace", {"rank": 1})
    rec.events.append((RUN, 1, 2, "k", "f"))
    rec.idle_flush()  # just opened: not yet due
    assert rec.events_written == 0 and len(rec.events) == 1
    monkeypatch.setattr(rec_mod, "IDLE_FLUSH_NS", 0)
    rec.idle_flush()
    assert rec.events_written == 1 and rec.events == []
    rec.close()


def test_flushes_lose_nothing_while_another_thread_appends(tmp_path):
    rec = Recorder(tmp_path / "rank-1.trace", {"rank": 1})
    n = 50_000
    done = threading.Event()

    def append() -> None:
        for i in range(n):
            rec.events.append((RUN, i, i + 1, f"k{i}", "f"))
        done.set()

    t = threading.Thread(target=append)
    t.start()
    while not done.is_set():
        rec.flush()
    t.join()
    rec.close()
    (session,) = read_sessions(rec.path)
    assert sorted(e[3] for e in session.events) == sorted(f"k{i}" for i in range(n))


def test_an_unwritable_directory_means_no_trace_not_a_failure(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING, logger="hpcdist.trace"):
        assert open_recorder(1, "worker", environ={"HPCDIST_TRACE_DIR": str(blocker / "trace")}) is None
    assert "no trace" in caplog.text
