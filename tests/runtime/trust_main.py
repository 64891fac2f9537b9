"""Rank 0 of `mpiexec -n N hpcdist exec` runs test_trust_values.py and test_cancel_running.py against the real world."""

import os
import sys

import pytest

here = os.path.dirname(os.path.abspath(__file__))
os.environ["HPCDIST_TRUST_ATTACHED"] = "1"
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-o", "addopts=", "--rootdir", here, "-W", "error",
                      os.path.join(here, "test_trust_values.py"), os.path.join(here, "test_cancel_running.py")]))
