"""The ported CPython concurrent.futures suite (and this directory's other tests) on a real
``mpiexec -n 4`` world: rank 0 runs pytest on the mpi backend, ranks 1..3 work."""

import sys
from pathlib import Path

import pytest
from mpiutil import run_mpi

pytestmark = pytest.mark.mpi

HERE = Path(__file__).resolve().parent


def test_cpython_futures_suite_under_mpiexec_4():
    proc = run_mpi([sys.executable, "-m", "hpcdist", "exec", str(HERE / "cpython_main.py")], 4, timeout=150)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-4000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout and " error" not in proc.stdout
