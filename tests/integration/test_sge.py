"""Against a real Grid Engine: submit, follow, cancel and a rejected submission (.ci/sge-up.sh)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from hpcdist import jobs
from hpcdist.launch import run_command

pytestmark = pytest.mark.sge


def wait_until(job: jobs.Job, state: str, timeout: float) -> jobs.JobStatus:
    end = time.monotonic() + timeout
    while True:
        st = job.status()
        if st.state == state or st.state in jobs.FINAL_STATES or time.monotonic() > end:
            return st
        time.sleep(0.2)


def test_four_rank_mpi_job_runs_to_completed(sge, batch, tmp_path):
    spec = batch.ranks_spec(tmp_path, "local")
    result = batch.cli("submit", str(spec), "--scheduler", "sge")
    assert result.returncode == 0, result.stderr
    run_dir = Path(re.search(r"^run directory: (.+)$", result.stdout, re.M).group(1))
    job_id = re.search(r"^job id: (\d+)$", result.stdout, re.M).group(1)
    assert batch.run_dirs(tmp_path) == [run_dir.name]

    job = jobs.Job.from_run_dir(run_dir)
    assert (job.job_id, job.system) == (job_id, "sge")
    st = batch.wait(job)
    output = run_dir / f"sge-{job_id}.out"
    assert st.state == "COMPLETED", output.read_text() if output.exists() else st
    assert st.exit_code == 0 and st.source == "qacct"
    # one world of 4 ranks, started by Hydra inside the 4 slots of PE mpi
    assert sorted((run_dir / f"rank-{r}.txt").read_text() for r in range(4)) == [f"rank {r} of 4\n" for r in range(4)]
    assert sorted(output.read_text().splitlines()) == [f"rank {r} of 4" for r in range(4)]

    status = batch.cli("status", str(run_dir))
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"job {job_id} (sge): COMPLETED" in status.stdout


def test_pi_example_runs_through_hpcdist_exec(sge, batch, tmp_path):
    batch.check_pi_example("sge", tmp_path)


def test_status_while_queued_and_running_then_cancel(sge, batch, tmp_path):
    spec = batch.sleep_spec(tmp_path, "sge", extra='  directives: ["-h"]\n')
    job = jobs.submit(spec)
    try:
        queued = batch.cli("status", str(job.run_dir))
        assert queued.returncode == 10 and f"job {job.job_id} (sge): PENDING [hqw]" in queued.stdout, queued.stdout

        run_command(["qrls", job.job_id], timeout=15)
        assert wait_until(job, "RUNNING", batch.job_timeout).state == "RUNNING"
        running = batch.cli("status", job.job_id, "--scheduler", "sge")
        assert running.returncode == 10 and "RUNNING" in running.stdout, running.stdout

        cancel = batch.cli("cancel", str(job.run_dir))
        assert cancel.returncode == 0, cancel.stderr
        assert job.wait(timeout=batch.job_timeout, poll=0.2, max_poll=1.0).state == "CANCELLED"
        final = batch.cli("status", str(job.run_dir))
        assert final.returncode == 1 and "CANCELLED" in final.stdout
    finally:
        run_command(["qdel", job.job_id], timeout=15, check=False)


def test_rejected_submission_shows_qsub_message_and_leaves_no_run_dir(sge, batch, tmp_path):
    spec = batch.ranks_spec(tmp_path, "sge")
    result = batch.cli("submit", str(spec), "--set", "resources.queue=no-such-queue")
    assert result.returncode == 3, result.stdout + result.stderr
    assert 'unknown queue "no-such-queue"' in result.stderr
    assert result.stderr.startswith("hpcdist: error: qsub rejected the job")
    assert batch.run_dirs(tmp_path) == []
