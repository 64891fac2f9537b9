"""Merging a run's per-rank trace files into one Chrome Trace Event JSON (Perfetto, chrome://tracing).

The result is ``{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}`` with:

- one process per rank (``pid`` = rank), named ``rank N (host)`` by ``M process_name`` and sorted by
  rank (``process_sort_index``); every thread track named by ``M thread_name``;
- ``X`` complete events that never overlap on one track: a worker's task runs on its ``executor``
  track, input fetches (which overlap runs and each other) on ``fetch`` tracks (the inputs asked
  together that arrived in one message from one rank as one slice), rank 0's sends on its
  ``scheduler`` track (one ``dispatch`` slice per round of sends). Should two events of a track
  overlap all the same, the later one goes to an extra track of that name;
- a flow (``s`` on rank 0's dispatch, ``f`` with ``bp: "e"`` on the task's run) from each placement to
  the run it led to: the k-th run of a key on a rank is paired with the last placement of that key on
  that rank before it. Each flow event sits 1 ns inside its slice, so it binds to that slice;
- an ``i`` instant on rank 0 for each lost worker.

Clock: ranks on rank 0's host share its monotonic clock (``perf_counter_ns``) and are taken as they are;
a rank on another host is shifted by the difference of the (wall, perf) pairs read at start, so it is
only as right as the hosts' wall clocks agree (measuring the offsets is left for later).
"""

from __future__ import annotations

import json
import os
from bisect import bisect_right
from collections import defaultdict
from pathlib import Path
from typing import Any

from hpcdist.errors import HpcdistError
from hpcdist.paths import RunDir, atomic_write, trace_files
from hpcdist.trace.format import FETCH, LOST, PLACE, RUN, Session, read_sessions

__all__ = ["load_sessions", "merge", "write_chrome", "find_trace_dir"]

#: the first thread id of each kind of track on a rank (extra lanes of a kind count up from it)
EXECUTOR_TID, SCHEDULER_TID, FETCH_TID = 1, 1, 100
_BIND_NS = 1  # how far inside its slice a flow event sits
#: keys named in the args of a fetch slice of several inputs
FETCH_KEYS = 20


def find_trace_dir(path: str | os.PathLike[str]) -> Path:
    """The trace directory of ``path``: a run directory's ``trace/``, or ``path`` itself.

    Raises:
        HpcdistError: neither has a rank's trace file.
    """
    path = Path(path)
    for candidate in (RunDir(path).trace, path):
        if trace_files(candidate):
            return candidate
    raise HpcdistError(f"no trace files (rank-N.trace) in {path} or {RunDir(path).trace}")


def load_sessions(trace_dir: str | os.PathLike[str]) -> list[Session]:
    """Every session of every rank's file in ``trace_dir``, by rank."""
    return [session for _, path in trace_files(trace_dir) for session in read_sessions(path)]


def _offsets(sessions: list[Session]) -> list[int]:
    """Per session, nanoseconds to add to its times to put them on the reference clock (rank 0's)."""
    if not sessions:
        return []
    ref = min(sessions, key=lambda s: s.rank)
    ref_clock = ref.header["clock"]
    ref_delta = ref_clock["wall_ns"] - ref_clock["perf_ns"]
    out = []
    for s in sessions:
        clock = s.header["clock"]
        out.append(0 if s.host == ref.host else (clock["wall_ns"] - clock["perf_ns"]) - ref_delta)
    return out


class _Lanes:
    """Tracks of one kind on one rank: each interval goes on the first whose last event has ended."""

    def __init__(self, first_tid: int) -> None:
        self.first_tid = first_tid
        self.ends: list[int] = []

    def place(self, start: int, end: int) -> int:
        for i, last in enumerate(self.ends):
            if last <= start:
                self.ends[i] = end
                return self.first_tid + i
        self.ends.append(end)
        return self.first_tid + len(self.ends) - 1


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1] if "." in name else name


def merge(sessions: list[Session]) -> dict[str, Any]:
    """The Chrome Trace Event JSON object of ``sessions`` (see the module's docstring)."""
    offsets = _offsets(sessions)
    runs: list[tuple] = []  # (rank, start, end, key, fn name)
    fetches: list[tuple] = []  # (rank, start, end, key, nbytes, source)
    places: list[tuple] = []  # (start, end, key, rank)
    losses: list[tuple] = []  # (rank 0's rank, ns, lost rank, reason)
    hosts: dict[int, str] = {}
    threads: dict[int, int] = {}
    for session, off in zip(sessions, offsets):
        rank = session.rank
        hosts.setdefault(rank, session.host)
        if "executor_tid" in session.header:
            threads.setdefault(rank, session.header["executor_tid"])
        names = session.functions
        for e in session.events:
            kind = e[0]
            if kind == RUN:
                runs.append((rank, e[1] + off, e[2] + off, e[3], names.get(e[4], e[4])))
            elif kind == FETCH:
                fetches.append((rank, e[1] + off, e[2] + off, e[3], e[4], e[5]))
            elif kind == PLACE:
                places += [(e[1] + off, e[2] + off, key, e[3], rank) for key in e[4]]
            elif kind == LOST:
                losses.append((rank, e[1] + off, e[2], e[3]))
    times = [r[1] for r in runs] + [f[1] for f in fetches] + [p[0] for p in places] + [x[1] for x in losses]
    t0 = min(times) if times else 0

    def us(t: int) -> float:
        return round((t - t0) / 1000, 3)

    events: list[dict] = []
    tracks: dict[tuple[int, int], str] = {}
    lanes: dict[tuple[int, str], _Lanes] = {}

    def slice_(pid: int, kind: str, first_tid: int, start: int, end: int, name: str, cat: str,
               args: dict) -> dict:
        lane = lanes.setdefault((pid, kind), _Lanes(first_tid))
        tid = lane.place(start, end)
        index = tid - first_tid
        tracks[(pid, tid)] = kind if index == 0 else f"{kind} {index + 1}"
        ts = us(start)
        event = {"ph": "X", "name": name, "cat": cat, "pid": pid, "tid": tid, "ts": ts,
                 "dur": round(us(end) - ts, 3), "args": args}
        events.append(event)
        return event

    # rank 0's dispatches: one slice per round of sends (the placements that share a start and end)
    rounds: dict[tuple[int, int, int], list[tuple]] = defaultdict(list)
    for start, end, key, rank, sched in places:
        rounds[(sched, start, end)].append((key, rank))
    dispatch_at: dict[tuple[int, int], dict] = {}
    for (sched, start, end), placed in sorted(rounds.items(), key=lambda kv: kv[0][1]):
        per_rank: dict[str, int] = defaultdict(int)
        for _, rank in placed:
            per_rank[str(rank)] += 1
        dispatch_at[(sched, start)] = slice_(sched, "scheduler", SCHEDULER_TID, start, end, "dispatch", "dispatch",
                                             {"tasks": len(placed), "to_rank": dict(per_rank)})
    run_events: dict[tuple[str, int], list[tuple[int, dict]]] = defaultdict(list)
    for rank, start, end, key, fn in sorted(runs, key=lambda r: r[1]):
        event = slice_(rank, "executor", EXECUTOR_TID, start, end, _short(str(fn)), "task",
                       {"key": key, "function": fn})
        run_events[(key, rank)].append((start, event))
    # inputs asked together and come in one message are one slice (else dozens of tracks of one round trip)
    together: dict[tuple[int, int, int, int], list[tuple[str, int]]] = defaultdict(list)
    for rank, start, end, key, nbytes, src in fetches:
        together[(rank, start, end, src)].append((key, nbytes))
    for (rank, start, end, src), inputs in sorted(together.items(), key=lambda kv: kv[0][1]):
        args: dict[str, Any] = {"from_rank": src, "bytes": sum(n for _, n in inputs), "inputs": len(inputs)}
        if len(inputs) == 1:
            args["key"] = inputs[0][0]
        else:
            args["keys"] = [k for k, _ in inputs[:FETCH_KEYS]] + ([f"... {len(inputs) - FETCH_KEYS} more"]
                                                                    if len(inputs) > FETCH_KEYS else [])
        slice_(rank, "fetch", FETCH_TID, start, end, "fetch" if len(inputs) == 1 else f"fetch {len(inputs)}",
               "fetch", args)
    for sched, t, lost, reason in losses:
        tracks.setdefault((sched, SCHEDULER_TID), "scheduler")
        events.append({"ph": "i", "s": "p", "name": "worker lost", "cat": "loss", "pid": sched, "tid": SCHEDULER_TID,
                       "ts": us(t), "args": {"rank": lost, "reason": reason}})
    flows = _flows(places, run_events, dispatch_at, us)
    events.extend(flows)
    events.sort(key=lambda e: e["ts"])
    meta: list[dict] = []
    for rank in sorted(hosts):
        meta.append({"ph": "M", "name": "process_name", "pid": rank, "tid": 0,
                     "args": {"name": f"rank {rank} ({hosts[rank]})"}})
        meta.append({"ph": "M", "name": "process_sort_index", "pid": rank, "tid": 0, "args": {"sort_index": rank}})
    for (pid, tid), name in sorted(tracks.items()):
        if name.startswith("executor") and pid in threads:
            name = f"{name} (thread {threads[pid]})"
        meta.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}})
        meta.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid, "args": {"sort_index": tid}})
    counts = {"runs": len(runs), "fetches": len(fetches), "placements": len(places), "flows": len(flows) // 2,
              "losses": len(losses), "ranks": len(hosts)}
    return {"traceEvents": meta + events, "displayTimeUnit": "ms",
            "otherData": {"hpcdist_trace": 1, "clock": "perf_counter_ns; ranks not on rank 0's host shifted by "
                          "their wall clock", "counts": counts}}


def _flows(places: list[tuple], run_events: dict, dispatch_at: dict, us: Any) -> list[dict]:
    """``s``/``f`` pairs from each placement to the run it led to."""
    by_target: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    for start, _, key, rank, sched in places:
        by_target[(key, rank)].append((start, sched))
    flows: list[dict] = []
    next_id = 1
    for target, placed in by_target.items():
        runs = run_events.get(target)
        if not runs:
            continue
        placed.sort()
        starts = [p[0] for p in placed]
        used = -1
        for run_start, run in runs:
            i = bisect_right(starts, run_start) - 1  # the last placement before this run
            if i <= used:
                continue
            used = i
            start, sched = placed[i]
            dispatch = dispatch_at[(sched, start)]
            common = {"name": "dispatch", "cat": "dispatch", "id": next_id}
            flows.append({**common, "ph": "s", "pid": sched, "tid": dispatch["tid"],
                          "ts": _inside(dispatch, us(start + _BIND_NS))})
            flows.append({**common, "ph": "f", "bp": "e", "pid": run["pid"], "tid": run["tid"],
                          "ts": _inside(run, us(run_start + _BIND_NS))})
            next_id += 1
    return flows


def _inside(event: dict, ts: float) -> float:
    """``ts`` if it is inside ``event``'s slice, past its start; else the slice's middle."""
    if event["ts"] < ts <= event["ts"] + event["dur"]:
        return ts
    return round(event["ts"] + event["dur"] / 2, 3)


def write_chrome(trace_dir: str | os.PathLike[str], out: str | os.PathLike[str]) -> dict[str, Any]:
    """Merge the trace files of ``trace_dir`` into ``out`` (written atomically); returns the trace object."""
    trace = merge(load_sessions(trace_dir))
    text = json.dumps(trace, separators=(",", ":"))
    atomic_write(Path(out), text.encode(), fsync=False)
    return trace
