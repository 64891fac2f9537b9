"""The workloads: each runs on any :class:`~hpcdist.bench.systems.System` inside its driver.

Every workload warms up first, repeats (until its repetitions or its time budget run out,
at least once) and reports the median. It returns a dict: ``value`` in the workload's unit,
optionally ``bytes_via_master`` and ``extra`` details.
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

from hpcdist.bench import tasks
from hpcdist.bench.procstat import cpu_seconds, rss_bytes
from hpcdist.bench.systems import System

MIB = 1 << 20
#: seconds after which a workload stops repeating (it always runs once)
BUDGET_S = 20.0


@dataclass(frozen=True)
class Sizes:
    """How much each workload does (``--quick`` uses smaller counts, same array sizes)."""

    tiny_tasks: int = 10_000
    tiny_reps: int = 3
    roundtrips: int = 1000
    bw_bytes: int = 64 * MIB
    bw_reps: int = 7
    chains: int = 8
    chain_bytes: int = 32 * MIB
    tree_leaves: int = 64
    leaf_bytes: int = 4 * MIB
    graph_reps: int = 3
    idle_s: float = 3.0
    raw_pings: int = 2000
    raw_reps: int = 7
    round_tasks: int = 50_000
    rounds: int = 3


FULL = Sizes()
QUICK = Sizes(tiny_tasks=1000, tiny_reps=1, roundtrips=200, bw_reps=2, graph_reps=1, idle_s=1.0,
              raw_pings=500, raw_reps=2, round_tasks=20_000)


def _repeat(once: Callable[[], float], reps: int) -> list[float]:
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < reps and (not times or time.perf_counter() - start < BUDGET_S):
        gc.collect()
        times.append(once())
    return times


def tiny_map(sys_: System, z: Sizes) -> dict[str, Any]:
    """``map`` of a no-op over many items, results gathered on the driver: µs per task."""
    sys_.map_gather(tasks.noop, range(min(200, z.tiny_tasks)))

    def once() -> float:
        t0 = time.perf_counter()
        out = sys_.map_gather(tasks.noop, range(z.tiny_tasks))
        dt = time.perf_counter() - t0
        assert len(out) == z.tiny_tasks and out[-1] == z.tiny_tasks - 1
        return dt

    times = _repeat(once, z.tiny_reps)
    return {"value": statistics.median(times) / z.tiny_tasks * 1e6, "extra": {"tasks": z.tiny_tasks, "reps": len(times)}}


def latency(sys_: System, z: Sizes) -> dict[str, Any]:
    """``submit`` then ``result``, one at a time: µs per round trip (median)."""
    for i in range(20):
        sys_.value(sys_.submit(tasks.noop, i))
    times = []
    for i in range(z.roundtrips):
        t0 = time.perf_counter()
        assert sys_.value(sys_.submit(tasks.noop, i)) == i
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"value": statistics.median(times) * 1e6,
            "extra": {"p90_us": times[int(0.9 * len(times))] * 1e6, "n": len(times)}}


def bandwidth(sys_: System, z: Sizes) -> dict[str, Any] | None:
    """An array made on worker 0 is the argument of a task pinned to worker 1: GB/s.

    The time runs from that task's submission until it is done (its tiny result stays on
    the worker), so it includes one scheduling round trip besides the transfer.
    """
    if not sys_.placement:
        return None

    def once() -> float:
        src = sys_.submit(tasks.make_array, z.bw_bytes, 1, where=0)
        sys_.wait([src])
        t0 = time.perf_counter()
        dst = sys_.submit(tasks.nbytes_of, src, where=1)
        sys_.wait([dst])
        dt = time.perf_counter() - t0
        assert sys_.value(dst) == z.bw_bytes
        return dt

    once()
    times = _repeat(once, z.bw_reps)
    med = statistics.median(times)
    return {"value": z.bw_bytes / med / 1e9, "extra": {"median_ms": med * 1e3, "bytes": z.bw_bytes, "reps": len(times)}}


def _chains(sys_: System, n: int, nbytes: int) -> list[float]:
    a = [sys_.submit(tasks.make_array, nbytes, i) for i in range(n)]
    b = [sys_.submit(tasks.inc, x) for x in a]
    c = [sys_.submit(tasks.total, x) for x in b]
    return sys_.gather(c)


def _tree(sys_: System, n: int, nbytes: int) -> float:
    level = [sys_.submit(tasks.make_array, nbytes, i) for i in range(n)]
    while len(level) > 1:
        nxt = [sys_.submit(tasks.add, level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return sys_.value(sys_.submit(tasks.total, level[0]))


def _graph(sys_: System, z: Sizes, run: Callable[[int], Any], check: Callable[[Any], bool]) -> dict[str, Any]:
    run(MIB)  # warm-up: functions and processes
    moved: list[int] = []

    def once() -> float:
        before = sys_.bytes_via_master()
        t0 = time.perf_counter()
        out = run(0)
        dt = time.perf_counter() - t0
        assert check(out), out
        after = sys_.bytes_via_master()
        if after is not None:
            moved.append(after - before)
        if hasattr(sys_, "reset"):
            sys_.reset()
        return dt

    times = _repeat(once, z.graph_reps)
    return {"value": statistics.median(times), "bytes_via_master": max(moved) if moved else None,
            "extra": {"reps": len(times), "min_s": min(times)}}


def chains(sys_: System, z: Sizes) -> dict[str, Any]:
    """8 chains make(32 MiB) -> +1 -> sum, the sums gathered: seconds, and bytes via the driver."""
    def run(nbytes: int) -> list[float]:
        return _chains(sys_, z.chains, nbytes or z.chain_bytes)

    n = z.chain_bytes // 8
    want = [float((i + 1) * n) for i in range(z.chains)]
    return _graph(sys_, z, run, lambda out: len(out) == z.chains and out == want)


def tree_sum(sys_: System, z: Sizes) -> dict[str, Any]:
    """64 arrays of 4 MiB made on workers, summed pairwise in a tree: seconds, bytes via the driver."""
    def run(nbytes: int) -> float:
        return _tree(sys_, z.tree_leaves, nbytes or z.leaf_bytes)

    want = float(sum(range(z.tree_leaves)) * (z.leaf_bytes // 8))
    return _graph(sys_, z, run, lambda out: out == want)


def idle_cpu(sys_: System, z: Sizes) -> dict[str, Any]:
    """The driver sleeps; CPU used meanwhile by each process of the system: max % of one core."""
    pids = sys_.pids()
    time.sleep(0.5)  # let the pollers back off as they would between bursts of work
    before = {p: cpu_seconds(p) for p in pids}
    t0 = time.perf_counter()
    time.sleep(z.idle_s)
    wall = time.perf_counter() - t0
    after = {p: cpu_seconds(p) for p in pids}
    usage = {p: 100 * (after[p] - before[p]) / wall for p in pids
             if before[p] is not None and after[p] is not None}
    if not usage:
        return {"value": None, "extra": {"error": "no /proc CPU times on this system"}}
    return {"value": max(usage.values()), "extra": {"per_process_pct": [round(v, 2) for v in usage.values()],
                                                    "mean_pct": statistics.mean(usage.values())}}


#: tables that do not grow with the number of live keys (per function; a bounded log)
_BOUNDED_TABLES = ("durations", "log")


def rounds(sys_: System, z: Sizes) -> dict[str, Any] | None:
    """Rounds of ``map`` + gather of tiny tasks in one world, every future dropped after each.

    Reports the slowest round's time per task over the fastest's (``value``: 1 means every
    round took as long as the others),
    the rank-0 table entries left after the last round (``kept``; 0 when rank 0 is O(live
    keys)) and the driver's RSS growth from after the first round to after the last
    (``rss_growth_mib``); each round's µs/task, RSS and table entries are in ``extra``.
    Measured for hpcdist only (the peers have no rank-0 tables to count).
    """
    if sys_.rank0_tables() is None:
        return None
    sys_.map_gather(tasks.noop, range(200))
    per_round = []
    for _ in range(z.rounds):
        gc.collect()
        steals = sys_.steals()
        t0 = time.perf_counter()
        out = sys_.map_gather(tasks.noop, range(z.round_tasks))
        dt = time.perf_counter() - t0
        assert len(out) == z.round_tasks and out[-1] == z.round_tasks - 1
        del out
        gc.collect()
        # releases reach the scheduler at the end of its rounds: one round trip, and the
        # first count's round takes the release of that last task
        sys_.value(sys_.submit(tasks.noop, 0))
        gc.collect()
        sys_.rank0_tables()
        time.sleep(0.05)  # frees leave in batches within a few ms
        sizes = sys_.rank0_tables()
        rss = rss_bytes()
        per_round.append({
            "us_per_task": round(dt / z.round_tasks * 1e6, 2),
            "steals": None if steals is None else sys_.steals() - steals,
            "rss_mib": None if rss is None else round(rss / MIB, 1),
            "tables": {k: v for k, v in sizes.items() if v and k not in _BOUNDED_TABLES},
            "log": sizes.get("log"),
        })
    first, last = per_round[0], per_round[-1]
    growth = None if first["rss_mib"] is None else round(last["rss_mib"] - first["rss_mib"], 1)
    times = [r["us_per_task"] for r in per_round]
    return {"value": max(times) / min(times),
            "kept": sum(last["tables"].values()), "rss_growth_mib": growth,
            "steals": None if per_round[0]["steals"] is None else sum(r["steals"] for r in per_round),
            "extra": {"tasks_per_round": z.round_tasks, "rounds": per_round}}


#: workloads run inside each system's driver, in this order
RUNNERS: dict[str, Callable[[System, Sizes], dict[str, Any] | None]] = {
    "tiny_map": tiny_map,
    "latency": latency,
    "bandwidth": bandwidth,
    "chains": chains,
    "tree_sum": tree_sum,
    "rounds": rounds,
    "idle_cpu": idle_cpu,
}
