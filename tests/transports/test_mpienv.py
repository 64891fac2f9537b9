"""Several copies of a driver started by a batch system outside one MPI world fail at once, naming the fix."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from hpcdist.transports.mpienv import in_mpi_world, lone_copy
from hpcdist.errors import HpcdistError
from hpcdist.runtime import world

# (env, in an MPI world of several ranks, a lone copy of several)
CASES = {
    "plain-srun-n3": ({"SLURM_NTASKS": "3", "SLURM_STEP_NUM_TASKS": "3", "SLURM_STEP_ID": "0", "SLURM_PROCID": "1"},
                      False, True),
    "srun-n3-in-a-bigger-job": ({"SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "3", "SLURM_STEP_ID": "2"},
                                False, True),
    "srun-step-no-step-num-tasks": ({"SLURM_NTASKS": "4", "SLURM_STEP_ID": "0"}, False, True),
    "srun-n1-in-a-job-of-4": ({"SLURM_NTASKS": "4", "SLURM_STEP_NUM_TASKS": "1", "SLURM_STEP_ID": "0"},
                              False, False),
    "sbatch-script-itself": ({"SLURM_NTASKS": "4", "SLURM_PROCID": "0", "SLURM_JOB_ID": "7"}, False, False),
    "srun-mpi-pmi2": ({"SLURM_STEP_NUM_TASKS": "3", "SLURM_STEP_ID": "0", "PMI_SIZE": "3", "PMI_RANK": "0"},
                      True, False),
    "srun-mpi-pmix": ({"SLURM_STEP_NUM_TASKS": "3", "SLURM_STEP_ID": "0", "PMIX_RANK": "1"}, True, False),
    "hydra-mpiexec-n4": ({"PMI_SIZE": "4", "PMI_RANK": "2"}, True, False),
    "openmpi-mpirun-n4": ({"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "0"}, True, False),
    "mvapich-n2": ({"MV2_COMM_WORLD_SIZE": "2"}, True, False),
    "hydra-per-node-only": ({"MPI_LOCALNRANKS": "2"}, True, False),
    "sge-mpiexec-n1-of-4-slots": ({"NSLOTS": "4", "PMI_SIZE": "1", "PMI_RANK": "0"}, False, True),
    "sge-openmpi-n1-of-4-slots": ({"NSLOTS": "4", "OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "1"},
                                  False, True),
    "sge-plain-python-4-slots": ({"NSLOTS": "4", "JOB_ID": "12"}, False, False),
    "sge-mpiexec-n1-of-1-slot": ({"NSLOTS": "1", "PMI_SIZE": "1", "PMI_RANK": "0"}, False, False),
    "mpiexec-n1-outside-batch": ({"PMI_SIZE": "1", "PMI_RANK": "0"}, False, False),
    "laptop": ({}, False, False),
    "garbage-values": ({"SLURM_STEP_NUM_TASKS": "lots", "NSLOTS": "", "PMI_SIZE": "x"}, False, False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_detection(case):
    env, in_world, lone = CASES[case]
    assert in_mpi_world(env) is in_world
    problem = lone_copy(env)
    assert (problem is not None) is lone, problem
    if lone:
        assert "hpcdist exec" in problem
        assert ("srun --mpi=pmi2" in problem) if "SLURM_STEP_ID" in env else ("mpiexec -n $NSLOTS" in problem)


_LAUNCH = ("SLURM_", "PMI_", "PMIX_", "OMPI_", "MV2_", "MPI_LOCALNRANKS", "NSLOTS", "HPCDIST_BACKEND")


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith(_LAUNCH):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("case", [c for c, (_, _, lone) in CASES.items() if lone])
def test_every_automatic_choice_fails(clean_env, case):
    for name, value in CASES[case][0].items():
        clean_env.setenv(name, value)
    with pytest.raises(HpcdistError, match="hpcdist exec"):
        world.resolve_backend(None)
    from hpcdist.launcher import split_run_options

    with pytest.raises(HpcdistError, match="hpcdist exec"):
        split_run_options(None, None, None)  # `hpcdist run script.py` would start a world per copy
    # a backend chosen on purpose is left alone
    assert world.resolve_backend("process")[0] == "process"
    clean_env.setenv("HPCDIST_BACKEND", "thread")
    assert world.resolve_backend(None)[0] == "thread"


DRIVER = textwrap.dedent("""
    import hpcdist
    with hpcdist.Client() as c:
        print("driver ran", c.backend)
""")


def _clean():
    return {k: v for k, v in os.environ.items() if not k.startswith(_LAUNCH)}


def test_driver_under_simulated_plain_srun_fails_fast(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = _clean() | {"SLURM_NTASKS": "3", "SLURM_STEP_NUM_TASKS": "3", "SLURM_STEP_ID": "0", "SLURM_PROCID": "2"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode != 0
    assert "driver ran" not in proc.stdout
    assert "srun --mpi=pmi2" in proc.stderr, proc.stderr


def test_real_plain_srun_fails_fast(slurm, tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    proc = subprocess.run(["srun", "-n", "2", "-t", "1", sys.executable, str(script)], capture_output=True,
                          text=True, timeout=120, env=_clean(), cwd=tmp_path)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "driver ran" not in proc.stdout
    assert proc.stderr.count("srun --mpi=pmi2") == 2, proc.stderr  # each copy says so
