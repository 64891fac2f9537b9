"""``hpcdist doctor``: the report, its warnings and problems, and the command's exit status."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from hpcdist import doctor
from hpcdist.cli import cli

WHEEL_MPI = {"mpi4py": "4.1.2", "library_version": "MPICH Version: 5.0.2", "standard": "5.0",
             "library_file": "/x/lib/libmpi.so.12", "from_wheel": "mpich", "thread_level": "MULTIPLE"}


@pytest.fixture
def env(monkeypatch):
    for name in ("HPCDIST_BACKEND", "SLURM_JOB_ID", "SLURM_NNODES", "SLURM_JOB_NUM_NODES", "PE_HOSTFILE",
                 "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMI_RANK",
                 "PMIX_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(doctor, "_mpi_probe", lambda timeout: dict(WHEEL_MPI))
    return monkeypatch


def test_report_names_versions_commands_and_why_this_backend(env):
    report = doctor.diagnose(smoke=False)
    assert report["python"]["version"].count(".") == 2
    assert report["numpy"] and report["mpi"]["thread_level"] == "MULTIPLE"
    assert set(report["commands"]) == {"mpiexec", "srun", "sbatch", "qsub"}
    assert report["backend"]["name"] == "process" and report["backend"]["reason"].startswith("automatic")
    env.setenv("HPCDIST_BACKEND", "Threads")
    assert doctor.diagnose(smoke=False)["backend"] == {"name": "thread", "reason": "HPCDIST_BACKEND"}
    assert doctor.diagnose(backend="sync", smoke=False)["backend"] == {"name": "local", "reason": "argument"}
    text = doctor.format_report(doctor.diagnose(backend="sync", smoke=False))
    assert "backend    local (argument)" in text and "PyPI wheel 'mpich'" in text and "status     ok" in text


def test_wheel_mpi_in_a_multi_node_slurm_allocation_warns(env):
    env.setenv("SLURM_JOB_ID", "42")
    env.setenv("SLURM_NNODES", "1")
    assert not doctor.diagnose(smoke=False)["warnings"]
    env.setenv("SLURM_NNODES", "2")
    report = doctor.diagnose(smoke=False)
    assert report["allocation"] == {"system": "slurm", "job_id": "42", "nodes": 2}
    assert any("PyPI 'mpich' wheel inside a 2-node allocation" in w for w in report["warnings"])


def test_sge_hostfile_with_two_hosts_warns(env, tmp_path):
    hostfile = tmp_path / "pe_hostfile"
    hostfile.write_text("node1 4 all.q@node1 UNDEFINED\nnode2 4 all.q@node2 UNDEFINED\n")
    env.setenv("PE_HOSTFILE", str(hostfile))
    report = doctor.diagnose(smoke=False)
    assert report["allocation"]["nodes"] == 2 and report["warnings"]
    hostfile.write_text("node1 8 all.q@node1 UNDEFINED\n")
    assert not doctor.diagnose(smoke=False)["warnings"]


def test_site_mpi_in_a_multi_node_allocation_is_fine(env):
    env.setattr(doctor, "_mpi_probe", lambda timeout: dict(WHEEL_MPI, from_wheel=None))
    env.setenv("SLURM_JOB_ID", "7")
    env.setenv("SLURM_NNODES", "8")
    assert doctor.diagnose(smoke=False)["warnings"] == []


def test_missing_mpi_is_a_warning_on_a_laptop_but_a_problem_when_needed(env):
    env.setattr(doctor, "_mpi_probe", lambda timeout: {"error": "mpi4py is not installed"})
    env.setattr("hpcdist.commands.find_mpiexec", lambda: None)
    report = doctor.diagnose(smoke=False)
    assert report["problems"] == [] and len(report["warnings"]) == 2
    result = CliRunner().invoke(cli, ["doctor", "--no-smoke", "--backend", "mpiexec"])
    assert result.exit_code == 1
    assert "PROBLEM    the mpi backend is unavailable: mpi4py is not installed" in result.output
    assert "no mpiexec on PATH" in result.output and "status     2 problem(s)" in result.output


def test_thread_level_too_low_is_a_problem(env):
    env.setattr(doctor, "_mpi_probe", lambda timeout: dict(WHEEL_MPI, thread_level="FUNNELED"))
    assert any("FUNNELED" in p for p in doctor.diagnose(smoke=False)["problems"])


def test_unknown_backend_is_a_problem(env):
    report = doctor.diagnose(backend="gpu", smoke=False)
    assert report["backend"]["name"] is None and "unknown backend 'gpu'" in report["problems"][0]


def test_a_failing_smoke_run_is_a_problem(env):
    env.setattr("hpcdist.commands.find_mpiexec", lambda: "/opt/mpi/bin/mpiexec")
    env.setattr(doctor, "_smoke_mpi", lambda mpiexec, timeout: {
        "backend": "mpi", "status": "failed", "seconds": 1.0, "error": "mpiexec -n 3 exited 255: boom"})
    report = doctor.diagnose(smoke=True)
    assert [r["status"] for r in report["smoke"]] == ["ok", "ok", "ok", "failed"]
    assert report["problems"] == ["the mpi backend failed its smoke run: mpiexec -n 3 exited 255: boom"]


@pytest.mark.mpi
def test_real_doctor_json_smoke_runs_every_backend():
    proc = subprocess.run([sys.executable, "-m", "hpcdist", "doctor", "--json", "--timeout", "60"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert [(r["backend"], r["status"]) for r in report["smoke"]] == [
        ("local", "ok"), ("thread", "ok"), ("process", "ok"), ("mpi", "ok")]
    assert all(r["seconds"] > 0 for r in report["smoke"])
    assert report["mpi"]["library_version"] and report["mpi"]["thread_level"] in ("SERIALIZED", "MULTIPLE")
