"""The table of ``hpcdist bench``: one row per figure, hpcdist and each peer, ratios, targets.

:data:`ROWS` holds the mpi backend's targets; :data:`BACKEND_TARGETS` replaces some of them
on the other backends, whose peers are the concurrent.futures pools.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

MIB = 1 << 20
NOT_INSTALLED = "not installed"


@dataclass(frozen=True)
class Row:
    """One line of the table.

    Attributes:
        key: the workload whose records feed the row.
        title: what the row shows.
        unit: the unit of its numbers.
        lower_is_better: direction used for the ratios.
        field: the record field shown (``value`` or ``bytes_via_master``).
        target: the target, as text.
        check: ``check(values, raw)`` -> True/False (met or not) or None (cannot tell).
    """

    key: str
    title: str
    unit: str
    lower_is_better: bool = True
    field: str = "value"
    target: str = ""
    check: Callable[[dict[str, float | None], dict[str, float | None]], bool | None] | None = None


def _ratio(row: Row, ours: float | None, peer: float | None) -> float | None:
    """How many times better hpcdist is than the peer (>1: hpcdist better)."""
    if ours is None or peer is None or row.field != "value":
        return None
    if row.lower_is_better:
        if ours == 0:  # e.g. idle CPU: both at 0 is a tie, not an infinite win
            return 1.0 if peer == 0 else math.inf
        return peer / ours
    return ours / peer if peer > 0 else math.inf


def _all(*conds: bool | None) -> bool | None:
    if any(c is False for c in conds):
        return False
    return None if any(c is None for c in conds) else True


def _cmp(a: float | None, op: Callable[[float], bool]) -> bool | None:
    return None if a is None else op(a)


def _tiny(v: dict, raw: dict) -> bool | None:
    h = v.get("hpcdist")
    return _all(_cmp(h, lambda x: x < 50),
                *(None if v.get(p) is None or h is None else v[p] / h >= k
                  for p, k in (("mpi4py.futures", 2), ("dask", 10)) if p in v))


def _at_most_dask(v: dict, raw: dict) -> bool | None:
    h, d = v.get("hpcdist"), v.get("dask")
    return None if h is None or d is None else h <= d


def _within(peer: str, k: float) -> Callable[[dict, dict], bool | None]:
    """Check: hpcdist's figure is at most ``k`` times the peer's (lower is better)."""
    def check(v: dict, raw: dict) -> bool | None:
        h, p = v.get("hpcdist"), v.get(peer)
        return None if h is None or p is None else h <= k * p

    return check


def _faster(peer: str) -> Callable[[dict, dict], bool | None]:
    """Check: hpcdist's time is below the peer's."""
    def check(v: dict, raw: dict) -> bool | None:
        h, p = v.get("hpcdist"), v.get(peer)
        return None if h is None or p is None else h < p

    return check


def _bandwidth(v: dict, raw: dict) -> bool | None:
    h, r = v.get("hpcdist"), raw.get("raw_bandwidth")
    return None if h is None or r is None else h >= 0.8 * r


ROWS = (
    Row("tiny_map", "tiny tasks, map + gather", "us/task", target="<50; 2x mpi4py.futures, 10x dask", check=_tiny),
    Row("tiny_map_trace", "  ... with the trace on", "us/task"),
    Row("tiny_map_trace", "  ... cost of the trace", "%", field="cost_pct", target="<=3",
        check=lambda v, r: _cmp(v.get("hpcdist"), lambda x: x <= 3)),
    Row("latency", "submit -> result, one at a time", "us", target="<200",
        check=lambda v, r: _cmp(v.get("hpcdist"), lambda x: x < 200)),
    Row("raw_latency", "raw MPI one-way, 8 B (rank 1-2)", "us"),
    Row("bandwidth", "64 MiB worker -> worker", "GB/s", lower_is_better=False, target=">=80% raw MPI", check=_bandwidth),
    Row("raw_bandwidth", "raw MPI Send/Recv 64 MiB, fresh buf", "GB/s", lower_is_better=False),
    Row("chains", "8 chains A->B->C, 32 MiB", "s", target="<= dask", check=_at_most_dask),
    Row("chains", "  ... bytes through the driver", "MiB", field="bytes_via_master", target="0",
        check=lambda v, r: _cmp(v.get("hpcdist"), lambda x: x == 0)),
    Row("tree_sum", "tree sum 64 x 4 MiB", "s", target="<= dask", check=_at_most_dask),
    Row("tree_sum", "  ... bytes through the driver", "MiB", field="bytes_via_master", target="0",
        check=lambda v, r: _cmp(v.get("hpcdist"), lambda x: x == 0)),
    Row("rounds", "3 rounds of tiny tasks, slowest/fastest", "ratio", target="<=1.5",
        check=lambda v, r: _cmp(v.get("hpcdist"), lambda x: x <= 1.5)),
    Row("rounds", "  ... rank-0 keys kept after them", "entries", field="kept", target="0",
        check=lambda v, r: _cmp(v.get("hpcdist"), lambda x: x == 0)),
    Row("rounds", "  ... steal messages in them", "msgs", field="steals"),
    Row("rounds", "  ... rank-0 RSS, last - first round", "MiB", field="rss_growth_mib"),
    Row("launch", "launch to first result", "s", target="<0.5",
        check=lambda v, r: _cmp(v.get("hpcdist"), lambda x: x < 0.5)),
    Row("idle_cpu", "idle CPU, busiest process", "%", target="<10",
        check=lambda v, r: _cmp(v.get("hpcdist"), lambda x: x < 10)),
    Row("recovery", "worker dies -> its task running again", "s", target="<=2.5",
        check=lambda v, r: _cmp(v.get("hpcdist"), lambda x: x <= 2.5)),
)


#: backend -> {(workload, field): (target, check)} replacing the targets of :data:`ROWS`;
#: an empty target means none (the mpi target names a peer or a figure that is not measured)
BACKEND_TARGETS: dict[str, dict[tuple[str, str], tuple[str, Any]]] = {
    "process": {
        ("tiny_map", "value"): ("<=2x processpool", _within("processpool", 2)),
        ("bandwidth", "value"): ("", None),
        ("chains", "value"): ("< processpool", _faster("processpool")),
    },
    "thread": {("tiny_map", "value"): ("", None), ("bandwidth", "value"): ("", None)},
    "local": {("tiny_map", "value"): ("", None), ("bandwidth", "value"): ("", None)},
}


def rows_for(backend: str) -> tuple[Row, ...]:
    """The rows of the table for ``backend``, with that backend's targets."""
    over = BACKEND_TARGETS.get(backend, {})
    out = []
    for row in ROWS:
        if (row.key, row.field) in over:
            target, check = over[row.key, row.field]
            row = Row(row.key, row.title, row.unit, row.lower_is_better, row.field, target, check)
        out.append(row)
    return tuple(out)


def _value(rec: dict[str, Any] | None, field: str) -> float | None:
    if not rec or rec.get(field) is None:
        return None
    x = float(rec[field])
    return x / MIB if field == "bytes_via_master" else x


def build(bench: dict[str, Any]) -> list[dict[str, Any]]:
    """The table as data: one dict per row with values, ratios, target and met."""
    systems = list(bench["systems"])
    peers = systems[1:]
    res = bench["results"]
    raw = {k: _value(res.get(k, {}).get("hpcdist"), "value") for k in ("raw_bandwidth", "raw_latency")}
    rows = []
    for row in rows_for(bench.get("backend", "mpi")):
        if row.key not in res:
            continue
        recs = res[row.key]
        values = {s: _value(recs.get(s), row.field) for s in systems}
        skipped = any(r.get("skipped") for r in recs.values())
        if row.key.startswith("raw_") and not skipped and all(v is None for v in values.values()):
            continue
        met = row.check(values, raw) if row.check else None
        rows.append({
            "workload": row.key, "title": row.title, "unit": row.unit, "field": row.field,
            "values": values,
            "notes": {s: _note(bench["systems"][s], recs.get(s), row) for s in systems},
            "ratios": {p: _ratio(row, values["hpcdist"], values[p]) for p in peers},
            "target": row.target, "met": None if not row.target else met,
        })
    return rows


def _note(status: str, rec: dict[str, Any] | None, row: Row) -> str:
    if status == NOT_INSTALLED:
        return NOT_INSTALLED
    if rec is not None and rec.get("note"):  # the recovery row: "dies", or "—" (not measured)
        return str(rec["note"])
    if rec is not None and rec.get("error"):
        return "hung" if rec["error"].startswith("did not finish") else "error"
    if status.startswith("failed"):
        return "failed"
    if rec is None:
        return "n/a"
    return "n/a" if rec.get(row.field) is None else ""


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    if x == 0:
        return "0"
    if math.isinf(x):
        return "inf"
    mag = abs(x)
    return f"{x:.0f}" if mag >= 100 else f"{x:.1f}" if mag >= 10 else f"{x:.2f}" if mag >= 0.1 else f"{x:.3g}"


def render(bench: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The table as text, with a header line naming the world size."""
    systems = list(bench["systems"])
    peers = systems[1:]
    head = ["workload", "unit", *systems, *(f"x vs {p}" for p in peers), "target", "met?"]
    lines = []
    for r in rows:
        cells = [r["title"], r["unit"]]
        cells += [_fmt(r["values"][s]) if r["values"][s] is not None else r["notes"][s] for s in systems]
        cells += [_fmt(r["ratios"][p]) for p in peers]
        cells += [r["target"], {True: "yes", False: "NO", None: "?" if r["target"] else ""}[r["met"]]]
        lines.append(cells)
    widths = [max(len(str(c)) for c in col) for col in zip(head, *lines)]
    out = [_title(bench)]
    for cells in (head, ["-" * w for w in widths], *lines):
        out.append("  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) if i < len(head) - 2 else str(c).ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip())
    out.append("x vs PEER: how many times better hpcdist is (>1: hpcdist faster / higher bandwidth).")
    backend = bench.get("backend", "mpi")
    na = bench.get("not_applicable") or {}
    if na:
        reasons = sorted(set(na.values()))
        out.append(f"n/a on the {backend} backend: {', '.join(na)} ({'; '.join(reasons)}).")
    how = (bench["results"].get("recovery", {}).get("hpcdist") or {}).get("extra", {}).get("how")
    if how and any(r["workload"] == "recovery" for r in rows):
        out.append(f"recovery: {how}.")
    for s, status in bench["systems"].items():
        if status.startswith("failed"):
            out.append(f"{s}: {status}")
    return "\n".join(out)


def _title(bench: dict[str, Any]) -> str:
    n = bench["nranks"]
    quick = ", quick" if bench["quick"] else ""
    backend = bench.get("backend", "mpi")
    if backend == "mpi":
        return f"hpcdist bench: {n} ranks (1 driver + {n - 1} workers){quick}"
    if backend == "local":
        return f"hpcdist bench: local backend (tasks run inline in the driver; peers: {n - 1} workers){quick}"
    kind = "worker threads in the driver's process" if backend == "thread" else "worker processes"
    return f"hpcdist bench: {backend} backend, 1 driver + {n - 1} {kind}{quick}"
