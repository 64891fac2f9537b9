"""Against a real SLURM: submit, follow, cancel and a rejected submission (.ci/slurm-up.sh)."""

from __future__ import annotations

import sys

import pytest

from hpcdist.batch import submission
from hpcdist.commands import run_command

pytestmark = pytest.mark.slurm


def test_four_rank_mpi_job_runs_to_completed(slurm, batch, tmp_path):
    batch.check_four_rank_job("slurm", tmp_path)


def test_pi_example_runs_through_hpcdist_exec(slurm, batch, tmp_path):
    batch.check_pi_example("slurm", tmp_path)


def test_status_while_queued_and_running_then_cancel(slurm, batch, tmp_path):
    spec = batch.sleep_spec(tmp_path, "slurm", extra='  directives: ["--hold"]\n')
    job = submission.submit(spec)
    try:
        queued = batch.cli("status", str(job.run_dir))
        assert queued.returncode == 10 and f"job {job.job_id} (slurm): PENDING" in queued.stdout, queued.stdout

        run_command(["scontrol", "release", job.job_id], timeout=15)
        assert batch.wait_until(job, "RUNNING", batch.job_timeout).state == "RUNNING"
        running = batch.cli("status", job.job_id, "--scheduler", "slurm")
        assert running.returncode == 10 and "RUNNING" in running.stdout, running.stdout

        cancel = batch.cli("cancel", str(job.run_dir))
        assert cancel.returncode == 0, cancel.stderr
        assert job.wait(timeout=batch.job_timeout, poll=0.2, max_poll=1.0).state == "CANCELLED"
        final = batch.cli("status", str(job.run_dir))
        assert final.returncode == 1 and "CANCELLED" in final.stdout
    finally:
        run_command(["scancel", job.job_id], timeout=15, check=False)


def test_rejected_submission_shows_sbatch_message_and_leaves_no_run_dir(slurm, batch, tmp_path):
    spec = batch.ranks_spec(tmp_path, "slurm")
    result = batch.cli("submit", str(spec), "--set", "resources.queue=no-such-partition")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "invalid partition" in result.stderr.lower()
    assert result.stderr.startswith("hpcdist: error: sbatch rejected the job")
    assert batch.run_dirs(tmp_path) == []


CRASH_PY = """\
import os

import hpcdist


def die():
    os._exit(3)


with hpcdist.Client() as client:
    client.submit(die, key="the-fatal-task", workers=[2]).result()
"""


def test_worker_crash_is_traced_to_task_and_rank(slurm, batch, tmp_path):
    (tmp_path / "crash.py").write_text(CRASH_PY)
    spec = tmp_path / "crash.yaml"
    spec.write_text(
        "name: crash\nscheduler: slurm\n"
        "resources:\n  ranks: 4\n  walltime: \"00:05:00\"\n"
        f"environment:\n  python: {sys.executable}\n  vars:\n    MPIEXEC_TIMEOUT: 60\n"
        "program:\n  script: crash.py\n"
        "output: runs/{name}-{timestamp}\n"
    )
    job = submission.submit(spec)
    st = batch.wait(job)
    output = (job.run_dir / f"slurm-{job.job_id}.out").read_text()
    assert st.state == "FAILED", output
    assert "rank 2 was running task 'the-fatal-task'" in output, output
