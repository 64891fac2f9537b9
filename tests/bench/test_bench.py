"""``hpcdist bench``: the command runs, reports every workload, and shows missing peers.

Figures are measured by ``hpcdist bench`` itself; these tests check its plumbing and the
invariants that do not depend on the machine's speed (zero bytes through rank 0).
"""

from __future__ import annotations

import importlib.util
import json

import pytest
from click.testing import CliRunner

from hpcdist.bench import report, runner
from hpcdist.cli import cli

EVERY_ROW = {"tiny_map", "tiny_map_trace", "latency", "raw_latency", "bandwidth", "raw_bandwidth", "chains", "tree_sum",
             "rounds", "launch", "idle_cpu", "recovery"}
#: whether the mpi backend has a failure detector (else its recovery row is n/a)
MPI_DETECTOR = importlib.util.find_spec("hpcdist.transports.liveness") is not None


def _check_recovery(r: dict, backend: str) -> None:
    """The recovery row: a positive number of seconds where a worker process can be killed and seen dead."""
    if backend == "process" or (backend == "mpi" and MPI_DETECTOR):
        assert r["values"]["hpcdist"] > 0, r
    else:  # thread workers cannot be killed; an mpi backend without a detector would never see the death
        assert r["values"]["hpcdist"] is None and r["notes"]["hpcdist"] == "n/a", r


@pytest.mark.mpi
def _check_hpcdist_value(r: dict) -> None:
    """What every workload row of hpcdist must show, whatever the backend."""
    value = r["values"]["hpcdist"]
    if r["field"] == "bytes_via_master":
        assert value == 0, r  # chains and tree: data moves worker to worker, never through rank 0
    elif r["workload"] == "idle_cpu":
        assert 0 <= value < 100, r
    elif r["field"] == "kept":
        assert value == 0, r  # rounds: rank 0 keeps no per-key entry once the futures are gone
    elif r["field"] == "steals":
        # counted, not asserted zero: whether a tiny task is worth stealing follows the measured
        # durations, which a loaded machine inflates (test_memory_state pins the STEAL_MIN_DURATION rule)
        assert value >= 0, r
    elif r["field"] in ("rss_growth_mib", "cost_pct"):  # cost_pct: a difference of two noisy figures
        assert value is not None, r
    else:
        assert value > 0, r


def test_quick_bench_reports_every_workload(tmp_path):
    out = tmp_path / "out.json"
    res = CliRunner().invoke(cli, ["bench", "--quick", "-n", "3", "--no-peers", "--json", str(out),
                                   "--timeout", "60"])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["systems"] == {"hpcdist": "ok"}
    rows = data["table"]
    assert {r["workload"] for r in rows} == EVERY_ROW
    for r in rows:
        if r["workload"] == "recovery":
            _check_recovery(r, "mpi")
        else:
            _check_hpcdist_value(r)
    assert sum(r["field"] == "bytes_via_master" for r in rows) == 2
    assert "64 MiB worker -> worker" in res.output and "launch to first result" in res.output


@pytest.mark.mpi
def test_missing_peer_shows_not_installed(monkeypatch):
    monkeypatch.setattr(runner, "peer_available", lambda name: False)
    result = runner.run_bench(3, quick=True, only=("latency",), peers=("dask",), timeout=60)
    assert result["systems"] == {"hpcdist": "ok", "dask": "not installed"}
    rows = report.build(result)
    assert [r["workload"] for r in rows] == ["latency", "raw_latency", "raw_bandwidth"]
    assert rows[0]["values"]["dask"] is None and rows[0]["ratios"]["dask"] is None
    text = report.render(result, rows)
    latency_line = next(line for line in text.splitlines() if line.startswith("submit -> result"))
    assert "not installed" in latency_line


def test_ratios_targets_and_rendering():
    bench = {
        "nranks": 4, "quick": False,
        "systems": {"hpcdist": "ok", "mpi4py.futures": "ok", "dask": "ok"},
        "results": {
            "tiny_map": {"hpcdist": {"value": 40.0}, "mpi4py.futures": {"value": 200.0}, "dask": {"value": 300.0}},
            "bandwidth": {"hpcdist": {"value": 7.0}, "dask": {"value": 1.0}},
            "raw_bandwidth": {"hpcdist": {"value": 10.0}},
            "chains": {"hpcdist": {"value": 0.2, "bytes_via_master": 0},
                       "mpi4py.futures": {"value": 4.0, "bytes_via_master": 1 << 30},
                       "dask": {"value": 0.1, "bytes_via_master": None}},
        },
    }
    rows = {(r["workload"], r["field"]): r for r in report.build(bench)}
    tiny = rows["tiny_map", "value"]
    assert tiny["ratios"] == {"mpi4py.futures": 5.0, "dask": 7.5}
    assert tiny["met"] is False  # 7.5x dask is short of 10x
    bw = rows["bandwidth", "value"]
    assert bw["ratios"]["dask"] == 7.0 and bw["met"] is False  # 70 % of raw
    assert rows["chains", "value"]["met"] is False  # slower than dask
    moved = rows["chains", "bytes_via_master"]
    assert moved["values"]["mpi4py.futures"] == 1024 and moved["met"] is True
    assert moved["notes"]["dask"] == "n/a"
    text = report.render(bench, list(rows.values()))
    assert "x vs dask" in text and "NO" in text and "yes" in text


def _quick_table(tmp_path, *extra):
    out = tmp_path / "out.json"
    res = CliRunner().invoke(cli, ["bench", "--quick", "-n", "3", "--json", str(out), "--timeout", "60", *extra])
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text()), res.output


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_quick_bench_on_a_non_mpi_backend(tmp_path, backend):
    data, text = _quick_table(tmp_path, "--backend", backend, "--no-peers")
    assert data["backend"] == backend and data["systems"] == {"hpcdist": "ok"}
    rows = data["table"]
    assert {r["workload"] for r in rows} == EVERY_ROW
    for r in rows:
        if r["workload"].startswith("raw_"):
            assert r["values"]["hpcdist"] is None and r["notes"]["hpcdist"] == "n/a", r  # raw MPI: mpi backend only
        elif r["workload"] == "recovery":
            _check_recovery(r, backend)
        else:
            _check_hpcdist_value(r)
    title = next(line for line in text.splitlines() if line.startswith("hpcdist bench:"))
    assert f"{backend} backend, 1 driver + 2 worker" in title
    assert "n/a on the {} backend: raw MPI rows, mpi4py.futures".format(backend) in text


def test_process_backend_against_processpool():
    result = runner.run_bench(3, quick=True, only=("tiny_map", "chains"), backend="processes", timeout=60)
    assert result["backend"] == "process"
    assert list(result["systems"]) == ["hpcdist", "processpool", "dask"]  # the backend's peers
    result["systems"].pop("dask")  # the rest of the assertions do not depend on dask being installed
    rows = {(r["workload"], r["field"]): r for r in report.build(result)}
    tiny, chains = rows["tiny_map", "value"], rows["chains", "value"]
    assert tiny["target"] == "<=2x processpool" and chains["target"] == "< processpool"
    assert tiny["values"]["processpool"] > 0 and tiny["met"] in (True, False)
    assert chains["ratios"]["processpool"] > 0 and chains["met"] in (True, False)
    moved = rows["chains", "bytes_via_master"]["values"]
    assert moved["hpcdist"] == 0 and moved["processpool"] == 1024  # 8 chains x 4 trips of 32 MiB


def test_recovery_row_on_the_process_backend_and_processpool():
    """A SIGKILLed worker: hpcdist runs its task again elsewhere, ProcessPoolExecutor's pool breaks."""
    result = runner.run_bench(3, quick=True, only=("recovery",), backend="process", peers=("processpool",),
                              timeout=60)
    rows = report.build(result)
    assert [r["workload"] for r in rows] == ["recovery"]
    row = rows[0]
    assert row["values"]["hpcdist"] > 0 and row["target"] == "<=2.5" and row["met"] in (True, False)
    assert row["values"]["processpool"] is None and row["notes"]["processpool"] == "dies", row
    ours = result["results"]["recovery"]["hpcdist"]["extra"]
    (run,) = ours["runs"]
    assert run["death"] == "sigkill" and run["rank"] in (1, 2) and run["detect_s"] is not None, ours
    assert "BrokenProcessPool" in result["results"]["recovery"]["processpool"]["extra"]["error"]
    assert "recovery: process backend, worker SIGKILLed" in report.render(result, rows)


def test_recovery_row_notes_for_peers_without_a_figure():
    bench = {
        "nranks": 4, "quick": False, "backend": "mpi",
        "systems": {"hpcdist": "ok", "mpi4py.futures": "ok", "dask": "ok"},
        "results": {"recovery": {
            "hpcdist": {"value": 2.3, "extra": {"how": "mpiexec -disable-auto-cleanup (Hydra), worker os._exit(3)"}},
            "mpi4py.futures": {"value": None, "note": "dies"},
            "dask": {"value": None, "note": "—"}}},
    }
    (row,) = report.build(bench)
    assert row["met"] is True and row["notes"] == {"hpcdist": "", "mpi4py.futures": "dies", "dask": "—"}
    assert row["ratios"] == {"mpi4py.futures": None, "dask": None}
    text = report.render(bench, [row])
    line = next(ln for ln in text.splitlines() if ln.startswith("worker dies"))
    assert "2.30" in line and "dies" in line and "—" in line
    assert "recovery: mpiexec -disable-auto-cleanup (Hydra), worker os._exit(3)." in text


def test_backend_targets_and_title():
    bench = {
        "nranks": 3, "quick": False, "backend": "process",
        "systems": {"hpcdist": "ok", "processpool": "ok"},
        "not_applicable": {"raw MPI rows": "they need the mpi backend"},
        "results": {
            "tiny_map": {"hpcdist": {"value": 90.0}, "processpool": {"value": 40.0}},
            "raw_latency": {"hpcdist": {"value": None, "skipped": "needs the mpi backend"}},
            "bandwidth": {"hpcdist": {"value": 0.6}, "processpool": {"value": None, "skipped": "no placement"}},
            "chains": {"hpcdist": {"value": 0.1, "bytes_via_master": 0},
                       "processpool": {"value": 2.5, "bytes_via_master": 1 << 30}},
            "idle_cpu": {"hpcdist": {"value": 0.0}, "processpool": {"value": 0.0}},
        },
    }
    rows = {(r["workload"], r["field"]): r for r in report.build(bench)}
    assert rows["tiny_map", "value"]["met"] is False  # 90 us is more than 2 x 40 us
    assert rows["chains", "value"]["met"] is True and rows["chains", "value"]["ratios"]["processpool"] == 25.0
    assert rows["raw_latency", "value"]["notes"]["hpcdist"] == "n/a"  # shown, not dropped
    assert rows["bandwidth", "value"]["target"] == ""  # no raw MPI figure to compare with
    assert rows["idle_cpu", "value"]["ratios"]["processpool"] == 1.0  # 0 % vs 0 % is a tie
    text = report.render(bench, list(rows.values()))
    assert text.splitlines()[0] == "hpcdist bench: process backend, 1 driver + 2 worker processes"
    assert "n/a on the process backend: raw MPI rows (they need the mpi backend)." in text


def test_unknown_backend_is_a_clear_error():
    res = CliRunner().invoke(cli, ["bench", "--backend", "nosuch", "--no-peers"])
    assert res.exit_code != 0
    assert "unknown backend 'nosuch' (from --backend)" in str(res.exception)


def test_unknown_workload_is_a_clear_error():
    res = CliRunner().invoke(cli, ["bench", "--only", "nosuch", "--no-peers"])
    assert res.exit_code != 0
    assert "unknown workload(s) nosuch" in str(res.exception)
