"""One contract suite for every Transport: the checks of contract_checks.py, run on every rank.

In-process transports (inproc, and pipe with its whole mesh in this process) run each check in a
fresh world, one thread per rank. The MPI transport runs them all in one mpiexec world
(tests/mpi/transport_contract.py), which reports per check and rank.
"""

from __future__ import annotations

import multiprocessing
import re
import threading
import traceback

import pytest

from mpiutil import run_mpi
from transports.contract_checks import CHECKS, SIZE, WAIT_S, leftovers

from hpcdist.transports.inproc import InprocHub
from hpcdist.transports.pipe import PipeTransport


def inproc_world(size):
    hub = InprocHub(size)
    return [hub.endpoint(r) for r in range(size)]


def pipe_world(size):
    ends = {r: {} for r in range(size)}
    for i in range(size):
        for j in range(i + 1, size):
            ends[i][j], ends[j][i] = multiprocessing.Pipe(duplex=True)
    return [PipeTransport(r, size, ends[r]) for r in range(size)]


WORLDS = {"inproc": inproc_world, "pipe": pipe_world}


def run_on_every_rank(check, endpoints, timeout=2 * WAIT_S):
    """Run ``check(t)`` for every endpoint at once, one thread each; fail naming each rank's error."""
    errors = {}

    def body(t):
        try:
            check(t)
        except BaseException:
            errors[t.rank] = traceback.format_exc()

    threads = [threading.Thread(target=body, args=(t,), daemon=True, name=f"rank-{t.rank}") for t in endpoints]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout)
    hung = [th.name for th in threads if th.is_alive()]
    assert not hung, f"still running after {timeout} s: {hung}"
    assert not errors, "\n".join(f"rank {r}:\n{tb}" for r, tb in sorted(errors.items()))


@pytest.mark.parametrize("name", list(CHECKS))
@pytest.mark.parametrize("transport", list(WORLDS))
def test_contract_in_process(transport, name):
    endpoints = WORLDS[transport](SIZE)
    try:
        run_on_every_rank(CHECKS[name], endpoints)
        if name != list(CHECKS)[-1]:  # the last one closes the world
            assert {t.rank: leftovers(t) for t in endpoints} == {t.rank: 0 for t in endpoints}
    finally:
        for t in endpoints:
            t.close()


# not anchored to line starts: mpiexec may join two ranks' lines into one
_LINE = re.compile(r"check (\S+?) (ok|FAIL) rank=(\d+)(?:: ([^\n]*))?")


@pytest.fixture(scope="module")
def mpi_report():
    """``{check: {rank: "ok" or the failure}}`` from one mpiexec run of every check."""
    proc = run_mpi("transport_contract.py", SIZE, timeout=240)
    report: dict[str, dict[int, str]] = {}
    for name, status, rank, why in _LINE.findall(proc.stdout):
        report.setdefault(name, {})[int(rank)] = "ok" if status == "ok" else why
    return proc, report


@pytest.mark.mpi
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", list(CHECKS))
def test_contract_mpi(mpi_report, name):
    proc, report = mpi_report
    got = report.get(name, {})
    context = f"rc={proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert got == {r: "ok" for r in range(SIZE)}, context


@pytest.mark.mpi
@pytest.mark.timeout(300)
def test_contract_mpi_world_exits_cleanly(mpi_report):
    proc, report = mpi_report
    assert proc.returncode == 0 and sorted(report) == sorted(CHECKS), proc.stderr[-4000:]
