"""Against a real Grid Engine: submit, follow, cancel and a rejected submission (.ci/sge-up.sh)."""

from __future__ import annotations


import pytest

from hpcdist.batch import submission
from hpcdist.commands import run_command

pytestmark = pytest.mark.sge


def test_four_rank_mpi_job_runs_to_completed(sge, batch, tmp_path):
    st = batch.check_four_rank_job("sge", tmp_path)
    assert st.exit_code == 0 and st.source == "qacct"


def test_pi_example_runs_through_hpcdist_exec(sge, batch, tmp_path):
    batch.check_pi_example("sge", tmp_path)


def test_status_while_queued_and_running_then_cancel(sge, batch, tmp_path):
    spec = batch.sleep_spec(tmp_path, "sge", extra='  directives: ["-h"]\n')
    job = submission.submit(spec)
    try:
        queued = batch.cli("status", str(job.run_dir))
        assert queued.returncode == 10 and f"job {job.job_id} (sge): PENDING [hqw]" in queued.stdout, queued.stdout

        run_command(["qrls", job.job_id], timeout=15)
        assert batch.wait_until(job, "RUNNING", batch.job_timeout).state == "RUNNING"
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
