"""Shutdown and failure behaviour of a real MPI world (mpiexec, every launch with a timeout)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
from mpiutil import MPI_DIR, run_mpi

pytestmark = pytest.mark.mpi


def test_clean_end_every_rank_exits_zero():
    start = time.monotonic()
    proc = run_mpi("driver_ok.py", 4, timeout=30)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("driver done") == 1  # only rank 0 runs code after Client()
    assert "BAD TERMINATION" not in proc.stdout + proc.stderr
    assert elapsed < 20


@pytest.mark.parametrize("variant", ["plain", "with"])
def test_driver_exception_ends_every_rank_nonzero(variant):
    proc = run_mpi([sys.executable, str(MPI_DIR / "driver_raises.py"), variant], 4, timeout=30)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert out.count("RuntimeError: driver failed on purpose") == 1, out
    assert "APPLICATION TIMED OUT" not in out


def test_driver_exception_under_hpcdist_exec():
    proc = run_mpi([sys.executable, "-m", "hpcdist", "exec", str(MPI_DIR / "driver_raises.py")], 4, timeout=30)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert out.count("RuntimeError: driver failed on purpose") == 1, out
    assert "APPLICATION TIMED OUT" not in out


@pytest.mark.parametrize("how", ["exit", "segfault"])
def test_worker_death_ends_job_naming_task_and_rank(how):
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "hpcdist", "run", "-n", "4", "--timeout", "60", str(MPI_DIR / "worker_dies.py"), how],
        capture_output=True, text=True, timeout=90,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert "rank 2 was running task 'the-fatal-task'" in proc.stderr, proc.stdout + proc.stderr
    assert elapsed < 25, "the world did not go down promptly"


def test_idle_ranks_do_not_spin():
    proc = run_mpi("idle_cpu.py", 4, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    usage = {int(r): float(p) for r, p in re.findall(r"rank (\d+) idle cpu ([\d.]+)%", proc.stdout)}
    assert sorted(usage) == [0, 1, 2, 3]
    print(usage)
    assert all(p < 50 for p in usage.values()), usage  # generous: `hpcdist bench` reports the real figure


def test_world_of_one_rank_is_a_clear_error(tmp_path):
    script = tmp_path / "one.py"
    script.write_text("import hpcdist\nhpcdist.Client(backend='mpi')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "SLURM_", "NSLOTS"))}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode != 0
    assert "at least 2" in proc.stderr and "rank 0 schedules" in proc.stderr


def test_plain_srun_singletons_are_detected(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "NSLOTS"))}
    env["SLURM_NTASKS"] = "4"
    proc = subprocess.run([sys.executable, "-m", "hpcdist", "exec", str(MPI_DIR / "driver_ok.py")],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode != 0
    assert "--mpi=pmi2" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_walltime_warning_signal_is_recorded_not_fatal():
    proc = run_mpi("walltime_signal.py", 4, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "after warning: [1, 2, 3] warned=True" in proc.stdout
    assert proc.stderr.count("walltime warning received") == 1
