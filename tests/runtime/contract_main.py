"""Rank 0 of `mpiexec -n N hpcdist exec` runs the Client contract suite against the real world."""

import os
import sys

import pytest

here = os.path.dirname(os.path.abspath(__file__))
os.environ["HPCDIST_CONTRACT_ATTACHED"] = "1"
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-o", "addopts=", "--rootdir", here, "-W", "error",
                      os.path.join(here, "test_contract.py")]))
