"""The Client contract suite on a real MPI world (rank 0 runs pytest, ranks 1..3 work)."""

import sys
from pathlib import Path

import pytest
from mpiutil import run_mpi

pytestmark = pytest.mark.mpi

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("nranks", [2, 4])
def test_contract_suite_under_mpiexec(nranks):
    proc = run_mpi([sys.executable, "-m", "hpcdist", "exec", str(HERE / "contract_main.py")], nranks, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout
