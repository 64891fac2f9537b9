"""The report's figures, table-tested on hand-made trace sessions (no run, no files)."""

from __future__ import annotations

import pytest

from hpcdist.report.figures import collect, figures, gantt, percentile, pipeline_names, task_rows
from hpcdist.trace.format import FETCH, LOST, PLACE, RUN, Session

MS = 1_000_000  # ns


def session(rank, events, host="h", size=0, functions=None, wall_ns=0, perf_ns=0):
    header = {"rank": rank, "host": host, "role": "scheduler" if rank == 0 else "worker",
              "clock": {"wall_ns": wall_ns, "perf_ns": perf_ns}}
    if size:
        header["size"] = size
    return Session(header, list(events), dict(functions or {"f": "m.inc", "g": "m.add"}))


def a_run(*, place=(), w1=(), w2=(), losses=(), size=3):
    """Rank 0 placing, ranks 1 and 2 running."""
    return [session(0, [*place, *losses], size=size), session(1, w1), session(2, w2)]


# (name, sessions, manifest, expected summary fields)
CASES = [
    ("two workers, all ran",
     a_run(place=[(PLACE, 0, 1 * MS, 1, ["a"]), (PLACE, 0, 1 * MS, 2, ["b"])],
           w1=[(RUN, 2 * MS, 6 * MS, "a", "f")], w2=[(RUN, 2 * MS, 10 * MS, "b", "g")]),
     None, {"wall_s": 0.01, "tasks": 2, "runs": 2, "unfinished": 0, "failed": None, "complete": True,
            "bytes_moved": 0, "ranks": 3}),
    ("a task placed and never run",
     a_run(place=[(PLACE, 0, MS, 1, ["a", "b"])], w1=[(RUN, 2 * MS, 3 * MS, "a", "f")]),
     None, {"tasks": 1, "unfinished": 1, "complete": False}),
    ("a worker lost, its task run again elsewhere",
     a_run(place=[(PLACE, 0, MS, 1, ["a"]), (PLACE, 5 * MS, 6 * MS, 2, ["a"])], losses=[(LOST, 4 * MS, 1, "exit")],
           w1=[(RUN, 2 * MS, 3 * MS, "a", "f")], w2=[(RUN, 7 * MS, 8 * MS, "a", "f")]),
     None, {"tasks": 1, "runs": 2, "reruns": 1, "recovered": 1, "workers_lost": 1, "complete": False}),
    ("a worker killed before it wrote its runs",
     a_run(place=[(PLACE, 0, MS, 1, ["a", "b"]), (PLACE, 5 * MS, 6 * MS, 2, ["a"]), (PLACE, 5 * MS, 6 * MS, 2, ["b"])],
           losses=[(LOST, 4 * MS, 1, "exit")], w2=[(RUN, 7 * MS, 8 * MS, "a", "f"), (RUN, 8 * MS, 9 * MS, "b", "f")]),
     None, {"tasks": 2, "runs": 2, "reruns": 0, "recovered": 2, "unfinished": 0, "complete": False}),
    ("fetches between workers",
     a_run(w1=[(RUN, 0, MS, "a", "f"), (FETCH, 2 * MS, 3 * MS, "b", 300, 2)],
           w2=[(RUN, 0, MS, "b", "f"), (FETCH, 2 * MS, 3 * MS, "a", 50, 1), (FETCH, 2 * MS, 3 * MS, "a", 7, 1)]),
     None, {"bytes_moved": 357, "complete": True}),
    ("a failed pipeline task, manifest not final",
     a_run(w1=[(RUN, 0, MS, "a", "f")]),
     {"final": False, "tasks": {"t.0": {"status": "failed", "error": "ValueError: no", "rank": 1, "key": "a",
                                        "attempts": 2, "traceback": "Traceback ...\nValueError: no"},
                                "t.1": {"status": "done"}}},
     {"failed": 1, "complete": False}),
    ("a finished pipeline, no failure", a_run(w1=[(RUN, 0, MS, "a", "f")]),
     {"final": True, "tasks": {"t.0": {"status": "done"}}}, {"failed": 0, "complete": True}),
    ("no trace of rank 2", [session(0, [], size=3), session(1, [(RUN, 0, MS, "a", "f")])], None,
     {"ranks": 3, "complete": False}),
    ("nothing ran", [session(0, [], size=1)], None, {"tasks": 0, "wall_s": 0.0, "complete": False}),
]
CASE = {c[0]: c for c in CASES}


@pytest.mark.parametrize("sessions, manifest, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_summary(sessions, manifest, expected):
    summary = figures(collect(sessions), manifest)["summary"]
    assert {k: summary[k] for k in expected} == expected
    assert bool(summary["notes"]) == (not summary["complete"])


def test_the_notes_say_why_a_run_is_partial():
    notes = {c[0]: figures(collect(c[1]), c[2])["summary"]["notes"] for c in CASES}
    assert any("placed but never run" in n for n in notes["a task placed and never run"])
    assert any("worker(s) lost" in n for n in notes["a worker lost, its task run again elsewhere"])
    assert any("not final" in n for n in notes["a failed pipeline task, manifest not final"])
    assert any("1 task(s) failed" in n for n in notes["a failed pipeline task, manifest not final"])
    assert notes["no trace of rank 2"] == ["no trace of rank(s) 2"]
    killed = notes["a worker killed before it wrote its runs"]
    assert any("no task run in the trace of lost rank(s) 1" in n for n in killed)
    assert not any("no task run" in n for n in notes["a worker lost, its task run again elsewhere"])


def test_utilisation_is_the_union_of_busy_time_over_the_wall_time():
    runs = [(RUN, 0, 4 * MS, "a", "f"), (RUN, 2 * MS, 6 * MS, "b", "f"), (RUN, 8 * MS, 10 * MS, "c", "f")]
    fig = figures(collect(a_run(w1=runs, w2=[(RUN, 0, 10 * MS, "d", "g")])))
    by_rank = {r["rank"]: r for r in fig["ranks"]}
    assert by_rank[1]["busy_s"] == 0.008 and by_rank[1]["utilisation"] == 0.8 and by_rank[1]["tasks"] == 3
    assert by_rank[2]["utilisation"] == 1.0
    assert by_rank[0] == {"rank": 0, "host": "h", "role": "scheduler", "tasks": 0, "busy_s": 0.0, "utilisation": 0.0}


def test_bytes_matrix_goes_from_the_source_to_the_fetching_rank_and_per_function_bytes_are_of_its_results():
    sessions = CASE["fetches between workers"][1]
    fig = figures(collect(sessions))
    assert fig["bytes_matrix"]["ranks"] == [0, 1, 2]
    assert fig["bytes_matrix"]["bytes"] == [[0, 0, 0], [0, 0, 57], [0, 300, 0]]
    assert [(f["function"], f["count"], f["bytes_fetched"]) for f in fig["functions"]] == [("m.inc", 2, 357)]


def test_per_function_count_mean_and_p95():
    durations = list(range(1, 21))  # ms
    runs = [(RUN, 100 * MS * i, 100 * MS * i + d * MS, f"k{i}", "f") for i, d in enumerate(durations)]
    fig = figures(collect(a_run(w1=runs, w2=[(RUN, 0, 2 * MS, "z", "g")])))
    assert fig["functions"] == [
        {"function": "m.add", "count": 1, "mean_s": 0.002, "p95_s": 0.002, "bytes_fetched": 0},
        {"function": "m.inc", "count": 20, "mean_s": 0.0105, "p95_s": 0.019, "bytes_fetched": 0}]


@pytest.mark.parametrize("values, q, expected", [([], 95, 0.0), ([5], 95, 5), ([1, 2, 3, 4], 50, 2),
                                                 (list(range(100, 0, -1)), 95, 95), ([3, 1, 2], 100, 3)])
def test_percentile_is_nearest_rank(values, q, expected):
    assert percentile(values, q) == expected


def test_lost_workers_and_failures_are_listed():
    fig = figures(collect(CASE["a worker lost, its task run again elsewhere"][1]))
    assert fig["lost"] == [{"t_s": 0.004, "rank": 1, "reason": "exit"}]
    _, sessions, manifest, _ = CASE["a failed pipeline task, manifest not final"]
    fig = figures(collect(sessions), manifest)
    assert fig["failures"] == [{"task": "t.0", "key": "a", "rank": 1, "error": "ValueError: no", "attempts": 2,
                                "traceback": "Traceback ...\nValueError: no"}]


def test_a_rank_on_another_host_is_put_on_rank_0s_clock_by_its_wall_clock():
    # rank 1's perf clock reads 1 s less than rank 0's at the same wall time
    sessions = [session(0, [(PLACE, 5 * MS, 6 * MS, 1, ["a"])], host="h0", wall_ns=10**12, perf_ns=10**9),
                session(1, [(RUN, 7 * MS - 10**9, 9 * MS - 10**9, "a", "f")], host="h1", wall_ns=10**12, perf_ns=0)]
    line = collect(sessions)
    assert line.rounds[0][1:3] == (0, MS) and line.runs == [(1, 2 * MS, 4 * MS, "a", "m.inc")]


def test_task_rows_one_per_run_by_start():
    rows = task_rows(collect(CASE["a worker lost, its task run again elsewhere"][1]))
    assert rows == [("a", "m.inc", 1, 0.002, 0.003, 0.001), ("a", "m.inc", 2, 0.007, 0.008, 0.001)]


def test_gantt_has_one_row_per_rank_and_compact_columns():
    g = gantt(collect(CASE["two workers, all ran"][1]))
    assert g["rows"] == ["rank 0 (h)", "rank 1 (h)", "rank 2 (h)"]
    assert g["fns"] == ["m.inc", "m.add", "dispatch"]
    assert (g["r"], g["s"], g["d"], g["f"]) == ([1, 2, 0, 0], [2000, 2000, 0, 0], [4000, 8000, 1000, 1000],
                                               [0, 1, 2, 2])
    assert g["k"][:2] == ["a", "b"] and g["k"][2] == "1 task(s) to rank 1" and g["wall"] == 10000
    assert g["lost"] == []
    assert gantt(collect(CASE["a worker lost, its task run again elsewhere"][1]))["lost"] == [[1, 4000]]


def test_a_pipelines_tasks_are_named_by_the_manifest_not_by_its_wrapper_function():
    manifest = {"final": True, "tasks": {"a0": {"task": "a0", "key": "a0-1", "status": "done"},
                                         "m.3": {"task": "m", "key": "m-9", "status": "done"}}}
    assert pipeline_names(manifest) == {"a0-1": "task a0", "m-9": "task m"} and pipeline_names(None) == {}
    runs = [(RUN, 0, MS, "a0-1~1", "f"), (RUN, MS, 2 * MS, "m-9~2", "f"), (RUN, 2 * MS, 3 * MS, "other", "f")]
    line = collect(a_run(w1=runs), pipeline_names(manifest))
    assert [r[4] for r in line.runs] == ["task a0", "task m", "m.inc"]


def test_bytes_between_hosts():
    sessions = [session(0, [], host="a"),
                session(1, [(FETCH, 0, MS, "k", 10, 2), (FETCH, 0, MS, "k", 5, 3)], host="a"),
                session(2, [(FETCH, 0, MS, "k", 7, 1)], host="b"), session(3, [], host="b")]
    assert figures(collect(sessions))["hosts_matrix"] == {"hosts": ["a", "b"], "bytes": [[0, 7], [15, 0]]}
