"""A pipeline job under the real SLURM: warning signal -> walltime status, complete manifest, resume;
with ``resubmit: 1`` the job submits itself again and the second job finishes the run.

Skipped when no SLURM controller answers, unless HPCDIST_REQUIRE_SLURM=1 (then a failure),
like tests/integration.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpcdist.batch import jobs, submission
from hpcdist.commands import run_command
from hpcdist.exitcodes import ExitCode

pytestmark = pytest.mark.slurm
JOB_TIMEOUT = 60.0


def test_warning_signal_ends_a_pipeline_job_with_the_walltime_status_and_it_resumes(slurm, project,
                                                                                    tmp_path: Path) -> None:
    spec = project("""\
        tasks:
          naps: {call: nap, map: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], kwargs: {seconds: 0.5}}
          sum: {call: total, args: [{ref: naps}]}
        """)
    overrides = ["scheduler=slurm", "resources.walltime=00:05:00", f"environment.python={sys.executable}",
                 "environment.vars={MPIEXEC_TIMEOUT: 60}"]
    job = submission.submit(str(spec), overrides=overrides)
    try:
        deadline = time.monotonic() + JOB_TIMEOUT
        while not list((job.run_dir / "objects").glob("naps-*.meta.json")):
            assert time.monotonic() < deadline, "no task finished in time"
            time.sleep(0.1)
        run_command(["scancel", "--signal=USR1", "--batch", str(job.job_id)], timeout=15)
        job.wait(timeout=JOB_TIMEOUT, poll=0.2, max_poll=1.0)
    finally:
        if job.status().state not in jobs.FINAL_STATES:
            job.cancel()
    assert (job.run_dir / "exit_code").read_text().strip() == str(ExitCode.WALLTIME)
    manifest = json.loads((job.run_dir / "manifest.json").read_text())
    assert manifest["final"] and manifest["reason"] == "walltime"
    states = {t["status"] for t in manifest["tasks"].values()}
    assert "running" not in states and "not_run" in states and "done" in states
    done = sum(1 for t in manifest["tasks"].values() if t["status"] == "done")
    # the rest runs in a resumed run of the same run directory
    proc = subprocess.run([sys.executable, "-m", "hpcdist", "run", str(spec), "-n", "3", "--resume",
                           str(job.run_dir), "--timeout", "60"], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((job.run_dir / "manifest.json").read_text())
    assert sum(1 for t in manifest["tasks"].values() if t["status"] == "cached") == done
    assert manifest["exit_status"] == 0


def _local_hash(spec: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "hpcdist", "run", str(spec), "--backend", "thread", "--workers",
                           "2", "--timeout", "60"], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("hpcdist: output_hash ", 1)[1].split()[0]


def test_walltime_status_resubmits_the_job_once_and_the_second_job_finishes(slurm, project, tmp_path: Path) -> None:
    spec = project("""\
        tasks:
          naps: {call: nap, map: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], kwargs: {seconds: 0.4}}
          sum: {call: total, args: [{ref: naps}]}
        resubmit: 1
        """)
    overrides = ["scheduler=slurm", "resources.walltime=00:05:00", f"environment.python={sys.executable}",
                 "environment.vars={MPIEXEC_TIMEOUT: 60}"]
    job = submission.submit(str(spec), overrides=overrides)
    first = job.job_id
    try:
        deadline = time.monotonic() + JOB_TIMEOUT
        while not list((job.run_dir / "objects").glob("naps-*.meta.json")):
            assert time.monotonic() < deadline, "no task finished in time"
            time.sleep(0.1)
        run_command(["scancel", "--signal=USR1", "--batch", str(first)], timeout=15)
        final = job.wait(timeout=JOB_TIMEOUT, poll=0.2, max_poll=1.0)  # follows the resubmitted job
    finally:
        if job.status().state not in jobs.FINAL_STATES:
            job.cancel()
    record = json.loads((job.run_dir / "job.json").read_text())
    assert [j["how"] for j in record["jobs"]] == ["submit", "resubmit"] and record["resubmits"] == 1
    second = record["jobs"][1]["job_id"]
    assert final.job_id == second != first and final.state == "COMPLETED", final
    assert "hpcdist: pipeline walltime" in (job.run_dir / f"slurm-{first}.out").read_text()
    assert (job.run_dir / "job-2.sh").exists() and (job.run_dir / "exit_code").read_text().strip() == "0"
    manifest = json.loads((job.run_dir / "manifest.json").read_text())
    assert manifest["final"] and manifest["exit_status"] == 0 and manifest["reason"] is None
    statuses = [t["status"] for t in manifest["tasks"].values()]
    assert "cached" in statuses and set(statuses) <= {"cached", "done"}
    assert manifest["output_hash"] == _local_hash(spec)


def test_hpcdist_cancel_of_a_pipeline_job_leaves_130_and_says_cancelled(slurm, project, tmp_path: Path) -> None:
    from test_lifecycle import STUCK, STUCK_BODY

    (tmp_path / "stuck.py").write_text(STUCK)
    marker = tmp_path / "stuck-started"
    spec = project(STUCK_BODY.format(marker=marker))
    overrides = ["scheduler=slurm", "resources.walltime=00:05:00", f"environment.python={sys.executable}",
                 "environment.vars={MPIEXEC_TIMEOUT: 60}"]
    job = submission.submit(str(spec), overrides=overrides)
    try:
        deadline = time.monotonic() + JOB_TIMEOUT
        while not marker.exists():  # item 3 is held in C code on its worker
            assert time.monotonic() < deadline, "the stuck task did not start in time"
            time.sleep(0.1)
        time.sleep(0.5)
        proc = subprocess.run([sys.executable, "-m", "hpcdist", "cancel", str(job.run_dir)], capture_output=True,
                              text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        job.wait(timeout=JOB_TIMEOUT, poll=0.2, max_poll=1.0)
    finally:
        if job.status().state not in jobs.FINAL_STATES:
            run_command(["scancel", str(job.job_id)], timeout=15)
    # the batch system calls the job over at the cancel; its script writes exit_code once the world is down
    exit_code = job.run_dir / "exit_code"
    deadline = time.monotonic() + JOB_TIMEOUT
    while not exit_code.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert exit_code.read_text().strip() == str(ExitCode.INTERRUPTED)
    log = (job.run_dir / f"slurm-{job.job_id}.out").read_text()
    assert "cancelled" in log, log
    assert "BAD TERMINATION" not in log and "problem with your application" not in log, log
    manifest = json.loads((job.run_dir / "manifest.json").read_text())
    assert manifest["final"] and manifest["exit_status"] == ExitCode.INTERRUPTED and manifest["reason"] == "interrupted"
    assert "running" not in {t["status"] for t in manifest["tasks"].values()}
