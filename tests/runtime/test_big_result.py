"""A result too large for rank 0's memory fails that result or gather only, not the world.

The allocation failure is simulated: the transports allocate every receive buffer through
``hpcdist.transports.base.allocate``, patched here to refuse large sizes with MemoryError.
"""

from __future__ import annotations

import contextlib
import sys

import numpy as np
import pytest

import hpcdist
from hpcdist.transports import base
from mpiutil import MPI_DIR, run_mpi

BIG = 4 << 20  # bytes of the result that "does not fit"
LIMIT = 2 << 20  # allocations from this size on fail


@contextlib.contextmanager
def scarce_memory(monkeypatch):
    real = base.allocate

    def allocate(nbytes):
        if nbytes >= LIMIT:
            raise MemoryError(f"simulated: no {nbytes} bytes")
        return real(nbytes)

    monkeypatch.setattr(base, "allocate", allocate)
    yield
    monkeypatch.setattr(base, "allocate", real)


def ones(n):
    return np.ones(n, dtype=np.uint8)


def total(a):
    return int(a.sum())


def inc(x):
    return x + 1


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_result_too_large_for_rank0_fails_that_result_only(monkeypatch, backend):
    with hpcdist.Client(backend=backend, workers=2) as client:
        big = client.submit(ones, BIG, pure=False)
        held = client.submit(inc, 1, pure=False)
        assert held.result(timeout=60) == 2
        big.exception(timeout=60)
        with scarce_memory(monkeypatch):
            with pytest.raises(MemoryError, match="does not fit in rank 0's memory") as info:
                big.result(timeout=60)
            assert big.key in str(info.value) and str(BIG) in str(info.value)
            with pytest.raises(MemoryError):
                client.gather([held, big])
            # the world goes on: new tasks, held results, small gathers, tasks using the big value
            assert client.submit(inc, 5, pure=False).result(timeout=60) == 6
            assert held.result(timeout=60) == 2
            assert client.gather([held]) == [2]
            assert client.submit(total, big, pure=False).result(timeout=60) == BIG
        assert int(big.result(timeout=60).sum()) == BIG  # memory is back: the value was never lost


@pytest.mark.mpi
def test_result_too_large_for_rank0_under_mpi():
    proc = run_mpi([sys.executable, str(MPI_DIR / "big_result.py")], 3, timeout=90)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "big result refused: MemoryError" in proc.stdout, out
    assert "world goes on" in proc.stdout and "BAD TERMINATION" not in out, out
