"""Rank 0 of `mpiexec -n N hpcdist exec` runs the ported CPython concurrent.futures suite on the mpi backend."""

import os
import sys

import pytest

here = os.path.dirname(os.path.abspath(__file__))
os.environ["HPCDIST_CPYTHON_ATTACHED"] = "1"
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-o", "addopts=", "--rootdir", here, "-W", "error",
                      "-o", "timeout=60", *sorted(os.path.join(here, name) for name in os.listdir(here)
                                                  if name.startswith("test_cpy_") and name != "test_cpy_mpi.py")]))
