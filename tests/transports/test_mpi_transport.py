"""Tests of the MPI transport: real mpiexec worlds running tests/mpi/transport_*.py."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
from mpiutil import MPI_DIR, run_mpi  # noqa: E402

from hpcdist.transports import mpi as mpi_backend  # noqa: E402
from hpcdist.transports import mpienv  # noqa: E402
from hpcdist.errors import TransportError  # noqa: E402

LAUNCH_VARS = (
    "PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "MPI_LOCALNRANKS",
    "PMIX_RANK", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS", "NSLOTS",
)


def _ok(proc):
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


@pytest.mark.mpi
@pytest.mark.parametrize("n", [2, 4])
def test_pingpong_and_loopback(n):
    out = _ok(run_mpi("transport_pingpong.py", n, timeout=60))
    assert "loopback ok" in out
    assert f"pingpong ok size={n} round_trips={200 * (n - 1)} hosts=1" in out


@pytest.mark.mpi
def test_bulk_zero_copy_chunking_and_order():
    out = _ok(run_mpi("transport_bulk.py", 3, timeout=90))
    assert "big ok nbytes=67108864 zero_copy=True buffer_type=ndarray" in out
    assert "chunked ok" in out and "chunks ok data_messages=308" in out
    assert "order ok seq=300 thread=300" in out


@pytest.mark.mpi
def test_comm_threads_with_sends_from_main_threads_and_clean_close():
    out = _ok(run_mpi("transport_threads.py", 3, timeout=60))
    assert "threads ok results=100" in out
    closes = {int(r): float(ms) for r, ms in re.findall(r"closed rank=(\d+) close_ms=([\d.]+)", out)}
    assert sorted(closes) == [0, 1, 2], out
    assert max(closes.values()) < 10_000  # Finalize met every rank; no faulthandler exit


@pytest.mark.mpi
def test_uncaught_exception_on_rank0_ends_the_job_instead_of_hanging():
    t0 = time.monotonic()
    proc = run_mpi("transport_crash.py", 3, timeout=30)
    elapsed = time.monotonic() - t0
    assert proc.returncode != 0
    assert "RuntimeError: bug in the driver" in proc.stderr
    assert "TIMED OUT" not in proc.stdout + proc.stderr
    assert elapsed < 15, elapsed


@pytest.mark.mpi
def test_idle_ranks_use_little_cpu(capsys):
    out = _ok(run_mpi("transport_idle.py", 4, timeout=60, env={"IDLE_S": "2.0"}))
    found = {int(r): float(p) for r, p in re.findall(r"idle rank=(\d+) wall_s=[\d.]+ cpu_pct=([\d.]+)", out)}
    assert sorted(found) == [0, 1, 2, 3], out
    with capsys.disabled():
        print(f"\n[mpi transport] idle CPU per rank, 4 ranks on {os.cpu_count()} cores: {found}")
    assert all(p < 50.0 for p in found.values()), found


@pytest.mark.mpi
def test_measurements_latency_and_bandwidth(capsys):
    out = _ok(run_mpi("transport_bench.py", 3, timeout=90))
    hot = re.search(r"hot_rtt_us median=([\d.]+)", out)
    cold = re.search(r"cold_rtt_ms median=([\d.]+)", out)
    bw = re.search(r"bw64_transport ms=([\d.]+) GBps=([\d.]+) raw ms=([\d.]+)", out)
    assert hot and cold and bw, out
    with capsys.disabled():
        print("\n[mpi transport] " + " | ".join(line for line in out.splitlines() if line.strip()))
    # sanity bounds only (the figures are reported, not asserted): nothing waits for seconds
    assert float(hot.group(1)) < 5000 and float(cold.group(1)) < 100 and float(bw.group(1)) < 2000


def _size1(extra_env):
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, str(MPI_DIR / "transport_size1.py")],
        capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
    )


@pytest.mark.mpi
def test_world_of_one_rank_is_a_clear_error():
    proc = _size1({})
    assert proc.returncode == TransportError.exit_code, proc.stderr
    assert "in_mpi_world=False" in proc.stdout
    assert "TransportError: hpcdist needs at least 2 MPI ranks: rank 0 schedules, the others work" in proc.stdout


@pytest.mark.mpi
@pytest.mark.parametrize("var", ["SLURM_NTASKS", "NSLOTS"])
def test_world_of_one_rank_under_a_batch_allocation_names_the_fix(var):
    proc = _size1({var: "4"})
    assert proc.returncode == TransportError.exit_code, proc.stderr
    assert f"promised several tasks ({var}=4)" in proc.stdout
    assert "separate one-rank worlds" in proc.stdout and "srun --mpi=pmi2" in proc.stdout


def test_module_imports_without_mpi4py():
    code = ("import sys, hpcdist.transports.mpi, hpcdist.transports.mpienv as m; m.in_mpi_world(); "
            "print('mpi4py' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, False),
        ({"PMI_SIZE": "4", "PMI_RANK": "0"}, True),
        ({"PMI_SIZE": "1", "PMI_RANK": "0"}, False),
        ({"OMPI_COMM_WORLD_SIZE": "8"}, True),
        ({"MV2_COMM_WORLD_SIZE": "2"}, True),
        ({"MPI_LOCALNRANKS": "2"}, True),
        ({"PMIX_RANK": "0", "SLURM_STEP_NUM_TASKS": "16"}, True),
        ({"PMIX_RANK": "0", "SLURM_STEP_NUM_TASKS": "1"}, False),
        ({"SLURM_NTASKS": "16"}, False),  # a batch script, not (yet) an MPI launch
    ],
)
def test_in_mpi_world_reads_launcher_variables(monkeypatch, env, expected):
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert mpienv.in_mpi_world() is expected


def test_poll_max_from_environment(monkeypatch):
    monkeypatch.delenv("HPCDIST_POLL_MAX_MS", raising=False)
    assert mpienv.poll_max_seconds() == pytest.approx(0.005)
    monkeypatch.setenv("HPCDIST_POLL_MAX_MS", "1")
    assert mpienv.poll_max_seconds() == pytest.approx(0.001)
    for bad in ("fast", "0", "-2"):
        monkeypatch.setenv("HPCDIST_POLL_MAX_MS", bad)
        with pytest.raises(TransportError, match="HPCDIST_POLL_MAX_MS"):
            mpienv.poll_max_seconds()


@pytest.mark.mpi
@pytest.mark.timeout(120)
def test_a_workers_goodbye_comes_after_what_it_sent_and_names_its_reason():
    from hpcdist.commands import find_mpiexec

    mpiexec = find_mpiexec()
    if mpiexec is None:
        pytest.skip("mpiexec not found")
    proc = subprocess.run(
        [mpiexec, "-disable-auto-cleanup", "-n", "3", sys.executable, str(MPI_DIR / "transport_goodbye.py")],
        capture_output=True, text=True, timeout=90, env=dict(os.environ, MPIEXEC_TIMEOUT="60"),
        stdin=subprocess.DEVNULL)
    assert "goodbye ok" in proc.stdout, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
