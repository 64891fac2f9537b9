"""A worker that dies before the run starts (before the scheduler knows it, or after its hello
but before every worker said hello): the run starts with the others, the lost rank is named, and
the survivors are told (PEER_DOWN), as for a death after the start. Never a hang: every world has
a hard timeout.

Process backend: in this process, the worker's command replaced. MPI: `mpiexec
-disable-auto-cleanup -n 4` running tests/mpi/startup_death.py, which ends rank 2 before MPI_Init
(the others cannot start: they end after the start-up timeout) or once MPI is up, before its hello.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

import hpcdist
from hpcdist.backends import process
from hpcdist.commands import find_mpiexec
from hpcdist.errors import HpcdistError

DRIVER = Path(__file__).resolve().parents[1] / "mpi" / "startup_death.py"
TIMEOUT = 60

pytestmark = [pytest.mark.timeout(TIMEOUT + 30)]

#: a worker process that says hello, then dies before the start
HELLO_THEN_EXIT = (
    "import os, time\n"
    "from hpcdist.runtime import messages as m\n"
    "from hpcdist.runtime.worker import Worker\n"
    "def serve(self):\n"
    "    self.transport.send(0, (m.HELLO, {'host': 'here', 'cores': 1, 'pid': os.getpid()}))\n"
    "    time.sleep(0.3)\n"
    "    os._exit(3)\n"
    "Worker.serve = serve\n")


def dead_peers():
    """(rank, the peers this worker was told were lost)."""
    from hpcdist.runtime.running import current_rank
    from hpcdist.runtime.worker import Worker

    workers = [o for o in gc.get_objects() if isinstance(o, Worker)]
    return current_rank(), sorted(workers[0].dead)


def inc(x):
    return x + 1


def add(a, b):
    return a + b


def worker_commands(monkeypatch: pytest.MonkeyPatch, change: dict[int, str]) -> None:
    """Worker rank R of the next process world runs ``change[R]`` (``{code}``: its own command)."""
    real = subprocess.Popen

    def popen(argv, *args, **kwargs):
        for rank, text in change.items():
            if f"worker_main({rank}," in argv[2]:
                argv = [argv[0], "-c", text.replace("{code}", argv[2])]
        return real(argv, *args, **kwargs)

    monkeypatch.setattr(process.subprocess, "Popen", popen)


def check_survivors(client: hpcdist.Client, lost: int) -> None:
    live = sorted(client.workers)
    assert lost not in live and len(live) == 2 and client.nworkers == 2
    assert list(client.lost_workers) == [lost] and f"rank {lost}" in client.lost_workers[lost][0]
    with pytest.raises(HpcdistError, match=f"no worker {lost}"):
        client.submit(inc, 1, workers=[lost])  # nothing can be placed there
    for r in live:  # told of the loss, as for a death after the start
        assert client.submit(dead_peers, workers=[r], pure=False).result(timeout=30) == (r, [lost])
    xs = [client.submit(inc, i, workers=[live[i % 2]]) for i in range(6)]
    sums = [client.submit(add, xs[i], xs[i + 1], workers=[live[(i + 1) % 2]]) for i in range(5)]
    assert client.gather(sums) == [2 * i + 3 for i in range(5)]


def test_process_worker_dead_before_its_hello_the_run_starts_with_the_others(monkeypatch, capfd):
    worker_commands(monkeypatch, {2: "import os; os._exit(3)"})
    with hpcdist.Client(backend="process", workers=3) as client:
        monkeypatch.undo()
        check_survivors(client, 2)
    err = capfd.readouterr().err
    assert "lost rank 2 (before it said hello)" in err and "worker rank 2 (pid" in err, err


def test_process_worker_dead_after_its_hello_before_the_start(monkeypatch, capfd):
    # rank 1 says hello and dies while rank 3 is still starting: the start waits for rank 3
    worker_commands(monkeypatch, {1: HELLO_THEN_EXIT + "{code}", 3: "import time; time.sleep(1.5)\n{code}"})
    with hpcdist.Client(backend="process", workers=3) as client:
        monkeypatch.undo()
        check_survivors(client, 1)
    err = capfd.readouterr().err
    assert "lost rank 1 (pid" in err and "host here" in err, err


def run_mpi(mode: str, **env: str) -> tuple[subprocess.CompletedProcess, str]:
    """``mpiexec -disable-auto-cleanup -n 4 python startup_death.py MODE``; it must end by itself."""
    mpiexec = find_mpiexec()
    if mpiexec is None:
        if os.environ.get("HPCDIST_REQUIRE_MPI") == "1":
            pytest.fail("no mpiexec (HPCDIST_REQUIRE_MPI=1)", pytrace=False)
        pytest.skip("mpiexec not found")
    full = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MPIEXEC_TIMEOUT=str(TIMEOUT),
                HPCDIST_FAILURE_TIMEOUT="1", **env)
    proc = subprocess.run([mpiexec, "-disable-auto-cleanup", "-n", "4", sys.executable, str(DRIVER), mode],
                          capture_output=True, text=True, timeout=TIMEOUT + 15, env=full, stdin=subprocess.DEVNULL)
    out = f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "TIMED OUT" not in out, out  # MPIEXEC_TIMEOUT: it hung
    return proc, out


@pytest.mark.mpi
def test_mpi_worker_dead_before_mpi_init_ends_the_others_after_the_startup_timeout() -> None:
    # MPI_Init waits for every rank with the GIL held: only the C-level timer ends the others
    proc, out = run_mpi("before_init", HPCDIST_STARTUP_TIMEOUT="2")
    assert proc.returncode != 0 and "started:" not in proc.stdout, out
    assert proc.stderr.count("Timeout (0:00:07)!") == 3, out  # the start-up timeout + INIT_MARGIN_S, each survivor
    assert "in _init_waiting_for_every_rank" in proc.stderr, out


@pytest.mark.mpi
def test_mpi_worker_dead_before_its_hello_the_run_starts_with_the_others() -> None:
    lost = 2
    proc, out = run_mpi("before_hello")
    live = [r for r in (1, 2, 3) if r != lost]
    assert f"started: {live} lost: [{lost}]" in proc.stdout, out
    for r in live:
        assert f"dead on {r}: [{lost}]" in proc.stdout, out
    assert "sums ok" in proc.stdout and "driver done" in proc.stdout, out
    assert f"hpcdist: lost rank {lost} (before it said hello)" in proc.stderr, out
