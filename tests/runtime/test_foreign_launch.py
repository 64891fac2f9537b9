"""Ranks that will never serve hpcdist (mpi4py.futures, another program) give a clear error, not a hang."""

from __future__ import annotations

import sys
import textwrap
import time

import pytest
from mpiutil import MPI_DIR, run_mpi

pytestmark = pytest.mark.mpi

DRIVER = textwrap.dedent("""
    import hpcdist
    with hpcdist.Client() as c:
        print("got", c.submit(abs, -1).result(timeout=20), flush=True)
""")


@pytest.mark.parametrize("how", ["script", "exec"])
def test_mpi4py_futures_launch_is_a_clear_error(tmp_path, how):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    argv = [sys.executable, "-m", "mpi4py.futures", str(script)] if how == "script" else \
        [sys.executable, "-m", "mpi4py.futures", "-m", "hpcdist", "exec", str(script)]
    start = time.monotonic()
    proc = run_mpi(argv, 3, timeout=60, env={"HPCDIST_STARTUP_TIMEOUT": "10"})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "python -m mpi4py.futures" in out and "hpcdist exec" in out, out
    assert "got 1" not in out and "APPLICATION TIMED OUT" not in out, out
    assert time.monotonic() - start < 45, out  # within the startup timeout, not the 60 s job limit


def test_other_ranks_never_join_is_a_clear_error_within_the_startup_timeout():
    start = time.monotonic()
    proc = run_mpi(MPI_DIR / "foreign_ranks.py", 3, timeout=60, env={"HPCDIST_STARTUP_TIMEOUT": "3"})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "did not start hpcdist within 3 s" in out, out
    assert "client started" not in out and "APPLICATION TIMED OUT" not in out, out
    assert time.monotonic() - start < 45, out
