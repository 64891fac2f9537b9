"""The strict checker: a sound trace passes, and each rule catches its own breakage."""

from __future__ import annotations

import copy

import pytest

from hpcdist.trace.check import check


def sound() -> dict:
    return {"displayTimeUnit": "ms", "traceEvents": [
        {"ph": "M", "name": "process_name", "pid": 0, "tid": 0, "args": {"name": "rank 0 (h)"}},
        {"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": "rank 1 (h)"}},
        {"ph": "M", "name": "thread_name", "pid": 0, "tid": 1, "args": {"name": "scheduler"}},
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"name": "executor"}},
        {"ph": "X", "name": "dispatch", "pid": 0, "tid": 1, "ts": 0.0, "dur": 5.0},
        {"ph": "s", "name": "dispatch", "cat": "dispatch", "id": 1, "pid": 0, "tid": 1, "ts": 0.001},
        {"ph": "X", "name": "inc", "pid": 1, "tid": 1, "ts": 10.0, "dur": 4.0},
        {"ph": "f", "bp": "e", "name": "dispatch", "cat": "dispatch", "id": 1, "pid": 1, "tid": 1, "ts": 10.001},
        {"ph": "X", "name": "inc", "pid": 1, "tid": 1, "ts": 14.0, "dur": 4.0},  # starts where the last ends
        {"ph": "i", "s": "p", "name": "worker lost", "pid": 0, "tid": 1, "ts": 20.0},
    ]}


def edit(index: int | None = None, drop: str | None = None, **fields) -> dict:
    trace = sound()
    if index is None:
        return trace
    event = trace["traceEvents"][index]
    if drop:
        del event[drop]
    event.update(fields)
    return trace


def test_a_sound_trace_has_no_problem():
    assert check(sound()) == []


@pytest.mark.parametrize("broken, words", [
    ({"events": []}, "no traceEvents"),
    (edit(6, ph="Q"), "unknown ph"),
    (edit(6, drop="dur"), "no 'dur'"),
    (edit(6, drop="name"), "no 'name'"),
    (edit(6, pid="1"), "'pid' is str"),
    (edit(5, drop="id"), "no 'id'"),
    (edit(5, drop="cat"), "no 'cat'"),
    (edit(0, args={}), "no args.name"),
    (edit(9, s="x"), "scope"),
    (edit(7, bp="q"), "bp"),
    (edit(4, ts=-1.0), "negative ts"),
    (edit(6, dur=-1.0), "negative dur"),
    (edit(8, ts=9.0), "before the previous event"),  # out of order on its track
    (edit(8, ts=13.0, dur=1.0), "overlap"),
    (edit(7, id=2), "no start"),  # the finish names another flow: both are unmatched
    (edit(7, id=2), "1 start(s) and 0 finish(es)"),
    (edit(5, ts=3.0, pid=1, tid=1), "binds to no slice"),
    (edit(7, ts=30.0), "binds to no slice"),
    (edit(1, name="process_labels"), "pid 1 (first in event 6): no process_name"),
    (edit(3, name="thread_labels"), "track (1, 1) (first in event 6): no thread_name"),
])
def test_each_rule_catches_its_breakage(broken, words):
    problems = check(broken)
    assert any(words in p for p in problems), problems


def test_a_flow_finished_twice_is_one_problem():
    trace = sound()
    trace["traceEvents"].append(copy.deepcopy(trace["traceEvents"][7]) | {"ts": 14.5})
    assert check(trace) == ["flow ('dispatch', 'dispatch', 1): 1 start(s) and 2 finish(es), not one each"]


def test_a_finish_before_its_start_is_a_problem():
    trace = sound()
    events = trace["traceEvents"]
    events[4].update(ts=11.0)
    events[5].update(ts=11.001)
    events.sort(key=lambda e: e.get("ts", -1))
    assert any("finishes" in p and "before it starts" in p for p in check(trace))


def test_a_finish_without_bp_binds_to_the_next_slice():
    trace = sound()
    flow = trace["traceEvents"][7]
    del flow["bp"]
    flow["ts"] = 9.0
    trace["traceEvents"].sort(key=lambda e: e.get("ts", -1))
    assert check(trace) == []
    flow["ts"] = 19.0  # no slice starts after it on that track
    trace["traceEvents"].sort(key=lambda e: e.get("ts", -1))
    assert any("binds to no slice" in p for p in check(trace))
