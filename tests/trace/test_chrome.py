"""The merge: per-rank sessions -> one Chrome Trace Event JSON the checker passes."""

from __future__ import annotations

import json

import pytest

from hpcdist.cli import main
from hpcdist.errors import HpcdistError
from hpcdist.paths import RunDir, trace_file
from hpcdist.trace.check import check
from hpcdist.trace.chrome import find_trace_dir, merge, write_chrome
from hpcdist.trace.format import FETCH, LOST, PLACE, RUN, Session, encode_events, encode_header, encode_names

US = 1000  # ns


def session(rank: int, events: list[tuple], host: str = "h", wall: int = 10**18, perf: int = 0, **header) -> Session:
    return Session({"rank": rank, "host": host, "clock": {"wall_ns": wall, "perf_ns": perf}, **header},
                   events, {"fn": "mod.inc"})


def by(trace: dict, **match) -> list[dict]:
    return [e for e in trace["traceEvents"] if all(e.get(k) == v for k, v in match.items())]


def example() -> list[Session]:
    return [
        session(0, [(PLACE, 0, 5 * US, 1, ["k1"]), (PLACE, 0, 5 * US, 2, ["k2"]),
                    (PLACE, 40 * US, 42 * US, 1, ["k1"]),  # k1 again (a retry)
                    (LOST, 90 * US, 3, "rank 3 died")]),
        session(1, [(RUN, 10 * US, 20 * US, "k1", "fn"), (RUN, 50 * US, 60 * US, "k1", "fn")], executor_tid=4242),
        session(2, [(FETCH, 8 * US, 30 * US, "k0", 4096, 1), (FETCH, 8 * US, 12 * US, "k9", 8, 1),
                    (RUN, 31 * US, 35 * US, "k2", "fn")]),
    ]


def test_the_merge_of_three_ranks_passes_the_checker_with_one_flow_per_run():
    trace = merge(example())
    assert check(trace) == []
    assert trace["displayTimeUnit"] == "ms"
    names = {e["pid"]: e["args"]["name"] for e in by(trace, ph="M", name="process_name")}
    assert names == {0: "rank 0 (h)", 1: "rank 1 (h)", 2: "rank 2 (h)"}
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in by(trace, ph="M", name="thread_name")}
    assert threads[(1, 1)] == "executor (thread 4242)" and threads[(0, 1)] == "scheduler"
    assert threads[(2, 100)] == "fetch" and threads[(2, 101)] == "fetch 2"  # two fetches at once: two tracks
    runs = by(trace, ph="X", cat="task")
    assert [(r["pid"], r["args"]["key"], r["name"]) for r in runs] == [(1, "k1", "inc"), (2, "k2", "inc"),
                                                                        (1, "k1", "inc")]
    assert runs[0]["ts"] == 10.0 and runs[0]["dur"] == 10.0 and runs[0]["args"]["function"] == "mod.inc"
    assert len(by(trace, ph="X", name="dispatch")) == 2
    assert trace["otherData"]["counts"] == {"runs": 3, "fetches": 2, "placements": 3, "flows": 3, "losses": 1,
                                            "ranks": 3}
    fetches = by(trace, ph="X", cat="fetch")
    assert [f["args"] for f in fetches] == [{"from_rank": 1, "bytes": 4096, "inputs": 1, "key": "k0"},
                                            {"from_rank": 1, "bytes": 8, "inputs": 1, "key": "k9"}]
    (lost,) = by(trace, ph="i")
    assert lost["args"] == {"rank": 3, "reason": "rank 3 died"} and lost["pid"] == 0


def test_inputs_that_came_in_one_message_are_one_fetch_slice():
    keys = [f"in{i}" for i in range(25)]
    sessions = [session(1, [(FETCH, 5 * US, 9 * US, k, 10, 2) for k in keys] + [(FETCH, 5 * US, 7 * US, "x", 1, 3)])]
    trace = merge(sessions)
    assert check(trace) == []
    big, small = sorted(by(trace, ph="X", cat="fetch"), key=lambda e: -e["args"]["inputs"])
    assert big["name"] == "fetch 25" and big["args"]["bytes"] == 250 and big["args"]["from_rank"] == 2
    assert big["args"]["keys"] == keys[:20] + ["... 5 more"]
    assert small["args"]["key"] == "x" and small["tid"] != big["tid"]
    assert trace["otherData"]["counts"]["fetches"] == 26


def test_a_retried_key_flows_from_its_second_placement_to_its_second_run():
    trace = merge(example())
    starts = {e["id"]: e for e in by(trace, ph="s")}
    ends = {e["id"]: e for e in by(trace, ph="f")}
    assert set(starts) == set(ends) and len(starts) == 3
    pairs = sorted((starts[i]["ts"], ends[i]["pid"], ends[i]["ts"]) for i in starts)
    assert pairs == [(0.001, 1, 10.001), (0.001, 2, 31.001), (40.001, 1, 50.001)]
    assert all(e["bp"] == "e" for e in ends.values())


def test_a_stolen_task_flows_only_from_the_placement_that_ran_it():
    sessions = [session(0, [(PLACE, 0, US, 1, ["k"]), (PLACE, 10 * US, 11 * US, 2, ["k"])]),
                session(1, []), session(2, [(RUN, 20 * US, 30 * US, "k", "fn")])]
    trace = merge(sessions)
    assert check(trace) == []
    (start,) = by(trace, ph="s")
    assert start["ts"] == 10.001


def test_overlapping_runs_of_one_rank_go_on_their_own_track():
    sessions = [session(1, [(RUN, 0, 10 * US, "a", "fn")]), session(1, [(RUN, 5 * US, 8 * US, "b", "fn")])]
    trace = merge(sessions)
    assert check(trace) == []
    assert {r["args"]["key"]: r["tid"] for r in by(trace, ph="X")} == {"a": 1, "b": 2}
    assert {e["args"]["name"] for e in by(trace, ph="M", name="thread_name")} == {"executor", "executor 2"}


def test_a_rank_on_another_host_is_put_on_rank_0s_clock_by_the_wall_clock_pair():
    # rank 1's monotonic clock reads 1 000 000 µs less than rank 0's at the same wall time
    sessions = [session(0, [(PLACE, 2_000_000 * US, 2_000_001 * US, 1, ["k"])], perf=0),
                session(1, [(RUN, 1_000_010 * US, 1_000_020 * US, "k", "fn")], host="other", perf=-1_000_000 * US)]
    trace = merge(sessions)
    assert check(trace) == []
    (run,) = by(trace, ph="X", cat="task")
    assert run["ts"] == 10.0  # 10 µs after rank 0's dispatch began
    # on one host the monotonic clock is shared: no shift, whatever the pair says (so here the run
    # comes first, and no flow leads to it)
    sessions[1].header["host"] = "h"
    trace = merge(sessions)
    assert by(trace, ph="X", cat="task")[0]["ts"] == 0.0 and by(trace, ph="s") == []


def test_no_events_is_an_empty_but_sound_trace():
    trace = merge([session(0, [])])
    assert check(trace) == []
    assert trace["otherData"]["counts"]["runs"] == 0


def write_example(trace_dir) -> None:
    trace_dir.mkdir(parents=True)
    for s in example():
        data = encode_header(s.header) + encode_names(s.functions) + encode_events(s.events)
        trace_file(trace_dir, s.rank).write_bytes(data)


def test_write_chrome_reads_a_directory_of_rank_files(tmp_path):
    write_example(RunDir(tmp_path).trace)
    assert find_trace_dir(tmp_path) == RunDir(tmp_path).trace
    assert find_trace_dir(RunDir(tmp_path).trace) == RunDir(tmp_path).trace
    out = tmp_path / "t.json"
    trace = write_chrome(find_trace_dir(tmp_path), out)
    assert json.loads(out.read_text()) == trace
    with pytest.raises(HpcdistError, match="no trace files"):
        find_trace_dir(tmp_path / "trace" / "nothing-here")


def test_the_cli_writes_trace_json_into_the_run_directory_or_elsewhere(tmp_path, capsys):
    write_example(RunDir(tmp_path).trace)
    main(["trace", str(tmp_path)])
    assert check(json.loads(RunDir(tmp_path).trace_json.read_text())) == []
    assert "3 task runs" in capsys.readouterr().out
    main(["trace", str(tmp_path), "-o", str(tmp_path / "other.json")])
    assert json.loads((tmp_path / "other.json").read_text())["otherData"]["counts"]["flows"] == 3


def test_the_cli_fails_on_a_directory_without_trace_files(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["trace", str(tmp_path)])
    assert exit_.value.code != 0
    assert "no trace files" in capsys.readouterr().err
