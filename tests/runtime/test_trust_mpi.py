"""The bad-value suite (test_trust_values.py) on a real MPI world: rank 0 runs pytest, ranks 1..2 work."""

import sys
from pathlib import Path

import pytest
from mpiutil import run_mpi

pytestmark = pytest.mark.mpi

HERE = Path(__file__).resolve().parent


def test_bad_values_fail_their_task_only_under_mpiexec():
    proc = run_mpi([sys.executable, "-m", "hpcdist", "exec", str(HERE / "trust_main.py")], 3, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout and "skipped" not in proc.stdout, out[-4000:]
    assert "BAD TERMINATION" not in out
