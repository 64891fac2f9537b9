"""The per-rank trace file: chunks round-trip, a torn tail is dropped, and an event costs few bytes."""

from __future__ import annotations

import struct

import pytest

from hpcdist.errors import HpcdistError
from hpcdist.trace.format import (FETCH, LOST, PLACE, RUN, encode_events, encode_header, encode_names,
                                  read_sessions)
from hpcdist.trace.recorder import Recorder

T0 = 123_456_789_000


def sample_events() -> list[tuple]:
    return [
        (RUN, T0, T0 + 5_000, "inc-abc-1", "fn1"),
        (FETCH, T0 + 100, T0 + 900, "inc-abc-0", 4096, 2),
        (RUN, T0 + 6_000, T0 + 9_000, "inc-abc-2", "fn1"),
        (PLACE, T0 - 50, T0 - 10, 1, ["inc-abc-3", "inc-abc-4"]),
        (PLACE, T0 - 50, T0 - 10, 2, []),
        (LOST, T0 + 10_000, 3, "rank 3 died: signal 9"),
    ]


def test_chunks_round_trip_every_kind(tmp_path):
    path = tmp_path / "rank-1.trace"
    path.write_bytes(encode_header({"rank": 1, "host": "h", "clock": {"wall_ns": 1, "perf_ns": 2}})
                     + encode_names({"fn1": "mod.f"}) + encode_events(sample_events()))
    (session,) = read_sessions(path)
    assert session.rank == 1 and session.host == "h"
    assert session.functions == {"fn1": "mod.f"}
    assert sorted(session.events) == sorted(sample_events())


def test_a_second_session_appends_and_a_torn_last_chunk_is_dropped(tmp_path):
    path = tmp_path / "rank-2.trace"
    first = encode_header({"rank": 2}) + encode_events(sample_events()[:2])
    second = encode_header({"rank": 2, "again": True}) + encode_events(sample_events()[2:3])
    torn = encode_events(sample_events())[:-5]
    path.write_bytes(first + second + torn)
    sessions = read_sessions(path)
    assert [s.header.get("again") for s in sessions] == [None, True]
    assert sorted(sessions[0].events) == sorted(sample_events()[:2])
    assert sessions[1].events == [sample_events()[2]]


@pytest.mark.parametrize("data, words", [
    (b"XX\x01\x00\x00\x00\x00\x00", "not a trace chunk"),
    (struct.pack("<2sBBI", b"HT", 99, 0, 2) + b"{}", "version 99"),
    (encode_events(sample_events()), "before the first header"),
    (encode_header({"rank": 1}) + struct.pack("<2sBBI", b"HT", 1, 1, 3) + b"abc", "damaged"),
])
def test_a_file_that_is_not_a_trace_is_an_error_naming_it(tmp_path, data, words):
    path = tmp_path / "rank-1.trace"
    path.write_bytes(data)
    with pytest.raises(HpcdistError, match=words):
        read_sessions(path)


def test_keys_with_a_nul_or_a_bracket_round_trip_too(tmp_path):
    events = [(RUN, T0, T0 + 1, "[odd", "f"), (RUN, T0, T0 + 2, "a\0b", "f"), (RUN, T0, T0 + 3, "", "f"),
              (PLACE, T0, T0 + 4, 1, ["x\0", "\udc80"])]
    path = tmp_path / "rank-1.trace"
    path.write_bytes(encode_header({"rank": 1}) + encode_events(events))
    assert sorted(read_sessions(path)[0].events) == sorted(events)
    path.write_bytes(encode_header({"rank": 1}) + encode_events([(RUN, T0, T0 + 1, "", "f")]))
    assert read_sessions(path)[0].events == [(RUN, T0, T0 + 1, "", "f")]


def test_an_event_with_the_wrong_fields_is_refused():
    with pytest.raises(ValueError):
        encode_events([(RUN, 1, 2, "key")])
    with pytest.raises(ValueError):
        encode_events([(99, 1)])


def test_an_event_takes_at_most_100_bytes_on_disk(tmp_path):
    """A size, not a timing: 10 000 events of a realistic mix, written by a recorder in several flushes."""
    rec = Recorder(tmp_path / "rank-1.trace", {"rank": 1, "role": "worker", "host": "node-001"}, limit=4096)
    t = T0
    fns = [f"{i:024x}" for i in range(5)]
    for i in range(10_000):
        key = f"process-{'7f3a9c2e5b1d4f60'}{i % 7}-{i}"
        if i % 10 == 9:
            rec.events.append((FETCH, t, t + 40_000 + i, key, 8 * i, 1 + i % 3))
        else:
            rec.events.append((RUN, t, t + 17_000 + (i * 7919) % 5000, key, fns[i % 5]))
        t += 23_000 + (i * 104729) % 9000
        if len(rec.events) >= rec.limit:
            rec.flush()
    rec.close()
    size = (tmp_path / "rank-1.trace").stat().st_size
    (session,) = read_sessions(tmp_path / "rank-1.trace")
    assert len(session.events) == 10_000
    assert size / 10_000 <= 100, f"{size / 10_000:.1f} bytes per event"
