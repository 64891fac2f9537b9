"""The numbers of a run's report, from its trace sessions (and its manifest, if a pipeline wrote one).

Pure: no files, no clock. :func:`collect` puts every rank's events on one timeline (nanoseconds since
the first event, ranks of other hosts shifted by their wall clock as in :mod:`hpcdist.trace.chrome`);
:func:`figures` turns it into the report's figures (the document ``report.json`` holds),
:func:`task_rows` into one row per task run (``tasks.csv``) and :func:`gantt` into the compact
column arrays the HTML page draws.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Mapping

from hpcdist.trace.format import FETCH, LOST, PLACE, RUN, Session

__all__ = ["Timeline", "collect", "pipeline_names", "figures", "task_rows", "gantt", "percentile", "TASK_COLUMNS"]

#: the columns of ``tasks.csv`` (times in seconds since the run's first event)
TASK_COLUMNS = ("key", "function", "rank", "start", "end", "duration")
#: characters of a failed task's traceback the report keeps
TRACEBACK_CHARS = 4000


@dataclass
class Timeline:
    """Every rank's events on one clock, in nanoseconds since the first event (``t0``)."""

    runs: list[tuple[int, int, int, str, str]] = field(default_factory=list)  # rank, start, end, key, function
    # rank, asked, arrived, key, bytes, source rank
    fetches: list[tuple[int, int, int, str, int, int]] = field(default_factory=list)
    rounds: list[tuple[int, int, int, list[str], int]] = field(default_factory=list)  # sched, start, end, keys, to rank
    losses: list[tuple[int, int, str]] = field(default_factory=list)  # t, lost rank, reason
    hosts: dict[int, str] = field(default_factory=dict)
    roles: dict[int, str] = field(default_factory=dict)
    size: int = 0  # the world's size, as rank 0's header says (0: unknown)

    @property
    def ranks(self) -> list[int]:
        """Every rank the run had: those that wrote a trace and those rank 0 counted."""
        return sorted(set(self.hosts) | set(range(self.size)))

    @property
    def wall(self) -> int:
        """From the first event to the last one's end (ns)."""
        ends = ([r[2] for r in self.runs] + [f[2] for f in self.fetches] + [p[2] for p in self.rounds]
                + [x[0] for x in self.losses])
        return max(ends, default=0)


def _offsets(sessions: list[Session]) -> list[int]:
    """Per session, the ns to add to put it on rank 0's clock (same host: none; else by wall clock)."""
    if not sessions:
        return []
    ref = min(sessions, key=lambda s: s.rank)
    ref_delta = ref.header["clock"]["wall_ns"] - ref.header["clock"]["perf_ns"]
    return [0 if s.host == ref.host else s.header["clock"]["wall_ns"] - s.header["clock"]["perf_ns"] - ref_delta
            for s in sessions]


def pipeline_names(manifest: Mapping[str, Any] | None) -> dict[str, str]:
    """A pipeline manifest's task key -> its task's name (a pipeline runs every task through one wrapper
    function, so its tasks are told apart by these names instead)."""
    tasks = (manifest or {}).get("tasks") or {}
    return {t["key"]: f"task {t.get('task') or tid}" for tid, t in tasks.items() if t.get("key")}


def collect(sessions: list[Session], names: Mapping[str, str] | None = None) -> Timeline:
    """The events of ``sessions`` on one timeline starting at 0.

    Args:
        sessions: every rank's trace sessions.
        names: task key -> the name to show instead of its function's (:func:`pipeline_names`); a key
            ``KEY~N`` (attempt N of a pipeline task) is looked up as ``KEY``.
    """
    line = Timeline()
    labels = names or {}
    raw_runs, raw_fetches, raw_rounds, raw_losses = [], [], [], []
    for session, off in zip(sessions, _offsets(sessions)):
        rank = session.rank
        line.hosts.setdefault(rank, session.host)
        line.roles.setdefault(rank, str(session.header.get("role") or "?"))
        line.size = max(line.size, int(session.header.get("size") or 0))
        functions = session.functions
        for e in session.events:
            kind = e[0]
            if kind == RUN:
                fn = functions.get(e[4], e[4])
                if labels:
                    fn = labels.get(str(e[3]).rsplit("~", 1)[0], fn)
                raw_runs.append((rank, e[1] + off, e[2] + off, str(e[3]), str(fn)))
            elif kind == FETCH:
                raw_fetches.append((rank, e[1] + off, e[2] + off, str(e[3]), int(e[4]), int(e[5])))
            elif kind == PLACE:
                raw_rounds.append((rank, e[1] + off, e[2] + off, [str(k) for k in e[4]], int(e[3])))
            elif kind == LOST:
                raw_losses.append((e[1] + off, int(e[2]), str(e[3])))
    t0 = min([r[1] for r in raw_runs] + [f[1] for f in raw_fetches] + [p[1] for p in raw_rounds]
             + [x[0] for x in raw_losses], default=0)
    line.runs = sorted((r, s - t0, e - t0, k, f) for r, s, e, k, f in raw_runs)
    line.fetches = sorted((r, s - t0, e - t0, k, n, src) for r, s, e, k, n, src in raw_fetches)
    line.rounds = sorted(((r, s - t0, e - t0, keys, to) for r, s, e, keys, to in raw_rounds), key=lambda p: p[1])
    line.losses = sorted((t - t0, lost, reason) for t, lost, reason in raw_losses)
    return line


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values`` (0.0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _busy(intervals: list[tuple[int, int]]) -> int:
    """The length of the union of ``intervals``."""
    total, reach = 0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


def _s(ns: float) -> float:
    return round(ns / 1e9, 6)


def figures(line: Timeline, manifest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The report's figures: summary, per rank, bytes matrix, per function, lost workers, failures.

    Args:
        line: the run's timeline (:func:`collect`).
        manifest: the pipeline's ``manifest.json`` document, if the run has one (failures, whether final).
    """
    wall = line.wall
    ranks = line.ranks
    ran_keys: dict[str, int] = defaultdict(int)
    fn_of: dict[str, str] = {}
    per_fn: dict[str, list[int]] = defaultdict(list)
    per_rank: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for rank, start, end, key, fn in line.runs:
        ran_keys[key] += 1
        fn_of[key] = fn
        per_fn[fn].append(end - start)
        per_rank[rank].append((start, end))
    placed = {key for _, _, _, keys, _ in line.rounds for key in keys}
    unfinished = len(placed - set(ran_keys))
    lost_ranks = {rank for _, rank, _ in line.losses}
    on_lost = {key for _, _, _, keys, to in line.rounds if to in lost_ranks for key in keys}
    ran_on: dict[str, set[int]] = defaultdict(set)
    for rank, _, _, key, _ in line.runs:
        ran_on[key].add(rank)
    recovered = sum(1 for key in on_lost if ran_on.get(key, set()) - lost_ranks)
    index = {r: i for i, r in enumerate(ranks)}
    matrix = [[0] * len(ranks) for _ in ranks]
    fetched_of: dict[str, int] = defaultdict(int)
    for rank, _, _, key, nbytes, src in line.fetches:
        if src in index and rank in index:
            matrix[index[src]][index[rank]] += nbytes
        fetched_of[fn_of.get(key, "?")] += nbytes
    moved = sum(f[4] for f in line.fetches)
    hosts = sorted(set(line.hosts.values()))
    at = {h: i for i, h in enumerate(hosts)}
    by_host = [[0] * len(hosts) for _ in hosts]
    for rank, _, _, _, nbytes, src in line.fetches:
        if src in line.hosts and rank in line.hosts:
            by_host[at[line.hosts[src]]][at[line.hosts[rank]]] += nbytes
    failures = _failures(manifest)
    notes = _notes(line, manifest, unfinished, failures)
    summary = {
        "wall_s": _s(wall), "ranks": len(ranks), "tasks": len(ran_keys), "runs": len(line.runs),
        "reruns": sum(n - 1 for n in ran_keys.values()), "unfinished": unfinished, "recovered": recovered,
        "failed": len(failures) if manifest is not None else None, "bytes_moved": moved,
        "fetches": len(line.fetches), "workers_lost": len(line.losses), "complete": not notes, "notes": notes,
    }
    return {
        "version": 1,
        "summary": summary,
        "ranks": [{"rank": r, "host": line.hosts.get(r, "?"), "role": line.roles.get(r, "?"),
                   "tasks": len(per_rank[r]), "busy_s": _s(_busy(per_rank[r])),
                   "utilisation": round(_busy(per_rank[r]) / wall, 4) if wall else 0.0} for r in ranks],
        "bytes_matrix": {"ranks": ranks, "bytes": matrix, "note": "row: the rank that held the data (source); "
                         "column: the rank that fetched it"},
        "hosts_matrix": {"hosts": hosts, "bytes": by_host},
        "functions": [{"function": fn, "count": len(d), "mean_s": _s(sum(d) / len(d)), "p95_s": _s(percentile(d, 95)),
                       "bytes_fetched": fetched_of.get(fn, 0)} for fn, d in sorted(per_fn.items())],
        "lost": [{"t_s": _s(t), "rank": rank, "reason": reason} for t, rank, reason in line.losses],
        "failures": failures,
    }


def _failures(manifest: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not manifest:
        return []
    out = []
    for tid, task in sorted((manifest.get("tasks") or {}).items()):
        if task.get("status") == "failed":
            out.append({"task": tid, "key": task.get("key"), "rank": task.get("rank"), "error": task.get("error"),
                        "attempts": task.get("attempts"),
                        "traceback": (task.get("traceback") or "")[-TRACEBACK_CHARS:] or None})
    return out


def _notes(line: Timeline, manifest: Mapping[str, Any] | None, unfinished: int, failures: list) -> list[str]:
    """Why the report may be of a partial or failed run (empty: a complete one, as far as it shows)."""
    notes = []
    if manifest is not None and not manifest.get("final"):
        notes.append("the manifest is not final: the run is still running, or stopped before its end")
    if manifest is not None and manifest.get("exit_status"):
        notes.append(f"the run exited with status {manifest['exit_status']}")
    if failures:
        notes.append(f"{len(failures)} task(s) failed")
    if unfinished:
        notes.append(f"{unfinished} task(s) placed but never run: the run failed or is still running "
                     "(or a rank's trace ends early)")
    if line.losses:
        notes.append(f"{len(line.losses)} worker(s) lost")
    silent = sorted({rank for _, rank, _ in line.losses} - {r[0] for r in line.runs})
    if silent:
        notes.append(f"no task run in the trace of lost rank(s) {', '.join(map(str, silent))}: a worker killed "
                     "loses the events it had not written yet")
    if line.size and set(range(line.size)) - set(line.hosts):
        missing = sorted(set(range(line.size)) - set(line.hosts))
        notes.append(f"no trace of rank(s) {', '.join(map(str, missing))}")
    if not line.runs:
        notes.append("no task ran")
    return notes


def task_rows(line: Timeline) -> list[tuple]:
    """One row per task run (:data:`TASK_COLUMNS`), by start."""
    return [(key, fn, rank, _s(start), _s(end), _s(end - start))
            for rank, start, end, key, fn in sorted(line.runs, key=lambda r: (r[1], r[0]))]


def gantt(line: Timeline) -> dict[str, Any]:
    """The Gantt's data as column arrays (times in integer microseconds): one row per rank.

    ``r`` row index, ``s`` start, ``d`` duration, ``f`` index into ``fns``, ``k`` the task's key (for a
    round of rank 0's sends: how many tasks it sent). Rank 0's rounds are named ``dispatch``. ``lost``:
    ``[row, time]`` of each worker lost.
    """
    ranks = line.ranks
    row = {r: i for i, r in enumerate(ranks)}
    fns: dict[str, int] = {}
    cols: dict[str, list] = {"r": [], "s": [], "d": [], "f": [], "k": []}
    items = [(rank, start, end, key, fn) for rank, start, end, key, fn in line.runs]
    items += [(sched, start, end, f"{len(keys)} task(s) to rank {to}", "dispatch")
              for sched, start, end, keys, to in line.rounds]
    for rank, start, end, key, fn in items:
        cols["r"].append(row[rank])
        cols["s"].append(start // 1000)
        cols["d"].append(max(1, (end - start) // 1000))
        cols["f"].append(fns.setdefault(fn, len(fns)))
        cols["k"].append(key)
    lost = [[row[rank], t // 1000] for t, rank, _ in line.losses if rank in row]
    return {"rows": [f"rank {r} ({line.hosts.get(r, 'no trace')})" for r in ranks], "fns": list(fns),
            "wall": max(1, line.wall // 1000), "lost": lost, **cols}
