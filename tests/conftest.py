"""Shared test set-up: tests/ on sys.path (for mpiutil), and whether MPI, SLURM and Grid Engine are there.

A missing system skips its tests, unless CI sets HPCDIST_REQUIRE_MPI/SLURM/SGE=1: then it fails them.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("mpi") is None:
        return
    from hpcdist.commands import find_mpiexec

    if find_mpiexec() is None:
        message = "no mpiexec: install the mpich extra (pip install -e '.[mpich,test]')"
        if os.environ.get("HPCDIST_REQUIRE_MPI") == "1":
            pytest.fail(message + " (HPCDIST_REQUIRE_MPI=1)")
        pytest.skip(message)


def _reachable(system: str, argv: list[str], variable: str) -> None:
    from hpcdist.errors import CommandError
    from hpcdist.commands import run_command

    try:
        run_command(argv, timeout=15)
        return
    except CommandError as exc:
        problem = str(exc)
    message = f"{system} is not reachable ({problem}); bring it up with .ci/{system.lower()}-up.sh"
    if os.environ.get(variable) == "1":
        pytest.fail(f"{message} [{variable}=1 makes this a failure]", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def slurm() -> str:
    """Skip (or fail) unless a SLURM controller answers."""
    _reachable("SLURM", ["sinfo", "-h", "-o", "%T"], "HPCDIST_REQUIRE_SLURM")
    return "slurm"


@pytest.fixture(scope="session")
def sge() -> str:
    """Skip (or fail) unless a Grid Engine qmaster answers."""
    _reachable("SGE", ["qstat", "-f"], "HPCDIST_REQUIRE_SGE")
    return "sge"
