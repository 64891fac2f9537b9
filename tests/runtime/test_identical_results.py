"""Results must not depend on the backend or the worker count (issue 3).

The same seeded map-reduce runs on local, on thread and process with 1, 2 and 4 workers,
and under ``mpiexec -n 2, 3, 5`` (1, 2, 4 workers); every run must give the same digest of
its result bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from identical_workload import workload
from mpiutil import run_mpi

import hpcdist

HERE = Path(__file__).resolve().parent
RUNS = [("local", None)] + [(b, n) for b in ("thread", "process") for n in (1, 2, 4)]


@pytest.fixture(scope="module")
def reference():
    with hpcdist.Client(backend="local") as client:
        return workload(client)


@pytest.mark.parametrize("backend, workers", RUNS, ids=[f"{b}-{n}" for b, n in RUNS])
def test_same_bytes_in_process(reference, backend, workers):
    with hpcdist.Client(backend=backend, workers=workers) as client:
        assert client.nworkers == (workers or 1)
        assert workload(client) == reference


@pytest.mark.mpi
@pytest.mark.parametrize("nranks", [2, 3, 5])
def test_same_bytes_under_mpiexec(reference, nranks):
    proc = run_mpi([sys.executable, str(HERE / "identical_workload.py")], nranks, timeout=90,
                   env={"HPCDIST_BACKEND": ""})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [line.split() for line in proc.stdout.splitlines() if line.startswith("DIGEST ")]
    assert lines == [["DIGEST", "mpi", str(nranks - 1), reference]]
