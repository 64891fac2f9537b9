"""Shared test set-up: tests/ on sys.path (for mpiutil), and MPI availability."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("mpi") is None:
        return
    from hpcdist.launch import find_mpiexec

    if find_mpiexec() is None:
        message = "no mpiexec: install the mpich extra (pip install -e '.[mpich,test]')"
        if os.environ.get("HPCDIST_REQUIRE_MPI") == "1":
            pytest.fail(message + " (HPCDIST_REQUIRE_MPI=1)")
        pytest.skip(message)
