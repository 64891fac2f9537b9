"""``hpcdist bench``: the command runs, reports every workload, and shows missing peers.

Figures are measured by ``hpcdist bench`` itself; these tests check its plumbing and the
invariants that do not depend on the machine's speed (zero bytes through rank 0).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hpcdist.bench import report, runner
from hpcdist.cli import cli

EVERY_ROW = {"tiny_map", "latency", "raw_latency", "bandwidth", "raw_bandwidth", "chains", "tree_sum",
             "launch", "idle_cpu"}


@pytest.mark.mpi
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
        value = r["values"]["hpcdist"]
        if r["field"] == "bytes_via_master":
            assert value == 0, r  # chains and tree: data moves worker to worker only
        elif r["workload"] == "idle_cpu":
            assert 0 <= value < 100, r
        else:
            assert value > 0, r
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


def test_unknown_workload_is_a_clear_error():
    res = CliRunner().invoke(cli, ["bench", "--only", "nosuch", "--no-peers"])
    assert res.exit_code != 0
    assert "unknown workload(s) nosuch" in str(res.exception)
