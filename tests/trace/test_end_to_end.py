"""A traced run on the thread, process and MPI backends: merged, checked, one run per task.

200 tasks: 100 ``inc`` and 100 ``add`` of two of them (inputs that often live on the other worker).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import hpcdist
from hpcdist.paths import trace_files
from hpcdist.runtime.worker import Worker
from hpcdist.trace.check import check
from hpcdist.trace.chrome import load_sessions, merge, write_chrome
from hpcdist.trace.format import RUN

N = 100


def inc(x):
    return x + 1


def add(a, b):
    return a + b


def run_tasks(backend: str) -> set[str]:
    with hpcdist.Client(backend=backend, workers=2) as client:
        firsts = client.map(inc, range(N))
        seconds = [client.submit(add, firsts[i], firsts[-1 - i]) for i in range(N)]
        assert sum(f.result() for f in seconds) == 10100
        return {f.key for f in firsts + seconds}


def assert_one_run_per_task(trace_dir: Path, keys: set[str] | None, tasks: int = 2 * N) -> dict:
    assert [rank for rank, _ in trace_files(trace_dir)] == [0, 1, 2]
    trace = write_chrome(trace_dir, trace_dir / "trace.json")
    assert check(json.loads((trace_dir / "trace.json").read_text())) == []
    runs = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] == "task"]
    ran = [e["args"]["key"] for e in runs]
    assert len(ran) == tasks and len(set(ran)) == tasks
    if keys is not None:
        assert set(ran) == keys
    assert {e["name"] for e in runs} == {"inc", "add"}
    assert {e["pid"] for e in runs} <= {1, 2}
    counts = trace["otherData"]["counts"]
    assert counts["runs"] == tasks and counts["flows"] == tasks  # every run has its dispatch
    assert counts["placements"] >= tasks and counts["ranks"] == 3
    fetches = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] == "fetch"]
    assert all(e["args"]["bytes"] > 0 and e["args"]["from_rank"] in (1, 2) for e in fetches)
    return trace


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_traced_run_gives_one_checked_run_event_per_task(backend, tmp_path, monkeypatch):
    monkeypatch.setenv("HPCDIST_TRACE_DIR", str(tmp_path / "trace"))
    monkeypatch.delenv("HPCDIST_TRACE", raising=False)
    keys = run_tasks(backend)
    trace = assert_one_run_per_task(tmp_path / "trace", keys)
    if backend == "thread":  # one process: every rank's events on one clock, none before the first dispatch
        dispatches = [e["ts"] for e in trace["traceEvents"] if e.get("name") == "dispatch" and e["ph"] == "X"]
        assert min(dispatches) == 0.0


@pytest.mark.timeout(120)
def test_trace_off_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCDIST_TRACE_DIR", str(tmp_path / "trace"))
    monkeypatch.setenv("HPCDIST_TRACE", "off")
    run_tasks("thread")
    assert not (tmp_path / "trace").exists()


def test_no_trace_directory_means_no_trace_object(monkeypatch):
    monkeypatch.delenv("HPCDIST_TRACE_DIR", raising=False)

    class Transport:
        rank, size = 1, 2

        def host_of(self, rank):
            return "h"

        def interrupt(self):
            pass

    assert Worker(Transport()).trace is None


@pytest.mark.mpi
@pytest.mark.timeout(180)
def test_a_traced_mpi_run_of_three_ranks(tmp_path):
    from mpiutil import run_mpi

    out = run_mpi(Path(__file__).with_name("mpi_driver.py"), 3, timeout=120,
                  env={"HPCDIST_TRACE_DIR": str(tmp_path / "trace"), "HPCDIST_TRACE": "on"})
    assert out.returncode == 0, out.stderr
    assert "driver done" in out.stdout
    assert_one_run_per_task(tmp_path / "trace", None)
    assert {s.header["pid"] for s in load_sessions(tmp_path / "trace")} != {os.getpid()}
    assert sum(1 for s in load_sessions(tmp_path / "trace") for e in s.events if e[0] == RUN) == 2 * N
    assert merge(load_sessions(tmp_path / "trace"))["otherData"]["counts"]["runs"] == 2 * N
