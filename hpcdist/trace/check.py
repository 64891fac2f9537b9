"""A strict checker of Chrome Trace Event JSON: what a viewer needs to draw a trace right.

:func:`check` returns a list of problems (empty: the trace is sound), each a short sentence naming the
event (its index in ``traceEvents``). The rules:

1. the object has a ``traceEvents`` list of objects, each with a known ``ph``;
2. each phase has its required fields, of the right types (:data:`REQUIRED`);
3. ``ts`` and ``dur`` are not negative;
4. events of one track ``(pid, tid)`` come in ``ts`` order (metadata aside);
5. no two ``X`` events of one track overlap (one may start where the other ends);
6. every flow start ``s`` has exactly one finish ``f`` (same ``cat``, ``name``, ``id``), not before it, and
   every ``f`` a start; each flow event binds to a slice of its track: ``s`` and an ``f`` with ``bp: "e"``
   lie inside an ``X`` (past its start), any other ``f`` has an ``X`` starting at or after it;
7. every ``pid`` used has a ``process_name`` and every ``(pid, tid)`` a ``thread_name`` metadata event.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from typing import Any

__all__ = ["check", "REQUIRED"]

_NUM = (int, float)
_INT = (int,)
_STR = (str,)
#: per phase, the fields it must have and their types
REQUIRED: dict[str, dict[str, tuple]] = {
    "X": {"name": _STR, "ts": _NUM, "dur": _NUM, "pid": _INT, "tid": _INT},
    "B": {"name": _STR, "ts": _NUM, "pid": _INT, "tid": _INT},
    "E": {"ts": _NUM, "pid": _INT, "tid": _INT},
    "i": {"name": _STR, "ts": _NUM, "pid": _INT, "tid": _INT},
    "I": {"name": _STR, "ts": _NUM, "pid": _INT, "tid": _INT},
    "C": {"name": _STR, "ts": _NUM, "pid": _INT, "args": (dict,)},
    "s": {"name": _STR, "cat": _STR, "id": (int, str), "ts": _NUM, "pid": _INT, "tid": _INT},
    "t": {"name": _STR, "cat": _STR, "id": (int, str), "ts": _NUM, "pid": _INT, "tid": _INT},
    "f": {"name": _STR, "cat": _STR, "id": (int, str), "ts": _NUM, "pid": _INT, "tid": _INT},
    "M": {"name": _STR, "pid": _INT, "args": (dict,)},
}
_EPS = 1e-6  # µs: float noise when comparing an end (ts + dur) with a start


def _fields(i: int, e: dict) -> list[str]:
    problems = []
    ph = e["ph"]
    for name, types in REQUIRED[ph].items():
        if name not in e:
            problems.append(f"event {i} ({ph}): no {name!r}")
        elif not isinstance(e[name], types) or isinstance(e[name], bool):
            problems.append(f"event {i} ({ph}): {name!r} is {type(e[name]).__name__}")
    for name in ("ts", "dur"):
        if isinstance(e.get(name), _NUM) and e[name] < 0:
            problems.append(f"event {i} ({ph}): negative {name} {e[name]}")
    if ph == "M":
        meta = e.get("name")
        if meta in ("process_name", "thread_name") and not isinstance(e.get("args", {}).get("name"), str):
            problems.append(f"event {i} (M {meta}): no args.name")
        if meta in ("thread_name", "thread_sort_index") and not isinstance(e.get("tid"), int):
            problems.append(f"event {i} (M {meta}): no tid")
    if ph in ("i", "I") and e.get("s", "t") not in ("g", "p", "t"):
        problems.append(f"event {i} ({ph}): scope {e.get('s')!r} is none of g, p, t")
    if ph == "f" and "bp" in e and e["bp"] != "e":
        problems.append(f"event {i} (f): bp {e['bp']!r} is not 'e'")
    return problems


def check(trace: Any) -> list[str]:
    """The problems of ``trace`` (a parsed Chrome Trace Event JSON object); empty when it is sound."""
    if not isinstance(trace, dict) or not isinstance(trace.get("traceEvents"), list):
        return ["no traceEvents list"]
    problems: list[str] = []
    ok: list[tuple[int, dict]] = []
    for i, e in enumerate(trace["traceEvents"]):
        if not isinstance(e, dict):
            problems.append(f"event {i}: not an object")
        elif e.get("ph") not in REQUIRED:
            problems.append(f"event {i}: unknown ph {e.get('ph')!r}")
        else:
            found = _fields(i, e)
            problems.extend(found)
            if not found:
                ok.append((i, e))
    problems += _order_and_overlap(ok)
    problems += _flows(ok)
    problems += _metadata(ok)
    return problems


def _order_and_overlap(events: list[tuple[int, dict]]) -> list[str]:
    problems = []
    last_ts: dict[tuple, float] = {}
    slices: dict[tuple, list[tuple[float, float, int]]] = defaultdict(list)
    for i, e in events:
        if e["ph"] == "M" or "tid" not in e:
            continue
        track = (e["pid"], e["tid"])
        if e["ts"] < last_ts.get(track, float("-inf")):
            problems.append(f"event {i}: ts {e['ts']} before the previous event of track {track} ({last_ts[track]})")
        last_ts[track] = max(e["ts"], last_ts.get(track, e["ts"]))
        if e["ph"] == "X":
            slices[track].append((e["ts"], e["ts"] + e["dur"], i))
    for track, spans in slices.items():
        spans.sort()
        for (s0, e0, i0), (s1, _, i1) in zip(spans, spans[1:]):
            if s1 < e0 - _EPS:
                problems.append(f"events {i0} and {i1}: X events overlap on track {track} ({s1} < {e0})")
    return problems


def _binds(e: dict, starts: list[float], spans: list[tuple[float, float]]) -> bool:
    """Whether flow event ``e`` binds to a slice of its track (``starts``/``spans`` sorted by start)."""
    ts = e["ts"]
    if e["ph"] == "f" and e.get("bp") != "e":
        return bisect_left(starts, ts - _EPS) < len(starts)
    k = bisect_left(starts, ts) - 1  # the last slice that starts strictly before ts
    return k >= 0 and any(s < ts <= end + _EPS for s, end in spans[max(0, k - 8):k + 1])


def _flows(events: list[tuple[int, dict]]) -> list[str]:
    problems = []
    spans: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    for _, e in events:
        if e["ph"] == "X":
            spans[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    for v in spans.values():
        v.sort()
    starts = {track: [s for s, _ in v] for track, v in spans.items()}
    begun: dict[tuple, list[tuple[int, dict]]] = defaultdict(list)
    ended: dict[tuple, list[tuple[int, dict]]] = defaultdict(list)
    for i, e in events:
        if e["ph"] not in ("s", "f"):
            continue
        (begun if e["ph"] == "s" else ended)[(e["cat"], e["name"], e["id"])].append((i, e))
        track = (e["pid"], e["tid"])
        if not _binds(e, starts.get(track, []), spans.get(track, [])):
            problems.append(f"event {i} ({e['ph']}): binds to no slice on track {track}")
    for flow, starts_of in begun.items():
        ends = ended.get(flow, [])
        if len(starts_of) != 1 or len(ends) != 1:
            problems.append(f"flow {flow}: {len(starts_of)} start(s) and {len(ends)} finish(es), not one each")
        elif ends[0][1]["ts"] < starts_of[0][1]["ts"]:
            problems.append(f"flow {flow}: finishes (event {ends[0][0]}) before it starts (event {starts_of[0][0]})")
    for flow, ends in ended.items():
        if flow not in begun:
            problems.append(f"flow {flow}: {len(ends)} finish(es) and no start (event {ends[0][0]})")
    return problems


def _metadata(events: list[tuple[int, dict]]) -> list[str]:
    named_pids = {e["pid"] for _, e in events if e["ph"] == "M" and e["name"] == "process_name"}
    named_tracks = {(e["pid"], e.get("tid")) for _, e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    problems = []
    pids: dict[int, int] = {}
    tracks: dict[tuple, int] = {}
    for i, e in events:
        if e["ph"] == "M":
            continue
        pids.setdefault(e["pid"], i)
        if "tid" in e:
            tracks.setdefault((e["pid"], e["tid"]), i)
    for pid, i in sorted(pids.items()):
        if pid not in named_pids:
            problems.append(f"pid {pid} (first in event {i}): no process_name metadata")
    for track, i in sorted(tracks.items()):
        if track not in named_tracks:
            problems.append(f"track {track} (first in event {i}): no thread_name metadata")
    return problems
