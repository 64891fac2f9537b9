"""A pipeline job under the real Grid Engine: submitted with --scheduler sge, it completes with a
final manifest and the same output_hash as a local run.

Skipped when no qmaster answers, unless HPCDIST_REQUIRE_SGE=1 (then a failure), like
tests/integration.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpcdist.batch import jobs

pytestmark = pytest.mark.sge
JOB_TIMEOUT = 60.0
BODY = """\
    tasks:
      numbers: {call: make, args: [8]}
      squares: {call: square, map: numbers}
      scaled:  {call: scale, map: squares, kwargs: {factor: 3}}
      sum:     {call: total, args: [{ref: scaled}]}
    save: [sum, squares]
"""


def hpcdist(*args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hpcdist", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_pipeline_job_completes_under_grid_engine_with_the_local_output_hash(sge, project) -> None:
    spec = project(BODY)
    local = hpcdist("run", str(spec), "--backend", "thread", "--workers", "2", "--timeout", "60")
    assert local.returncode == 0, local.stderr
    local_hash = local.stdout.split("hpcdist: output_hash ", 1)[1].split()[0]

    proc = hpcdist("submit", str(spec), "--scheduler", "sge", "--set", "resources.walltime=00:05:00",
                   "--set", f"environment.python={sys.executable}", "--set", "environment.vars={MPIEXEC_TIMEOUT: 60}")
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.split("run directory: ", 1)[1].splitlines()[0])
    job = jobs.Job.from_run_dir(run_dir)
    assert job.system == "sge" and job.job_id
    started = time.monotonic()
    try:
        final = job.wait(timeout=JOB_TIMEOUT, poll=0.2, max_poll=1.0)
    finally:
        if job.status().state not in jobs.FINAL_STATES:
            job.cancel()
    out = (run_dir / f"sge-{job.job_id}.out").read_text(errors="replace")
    assert final.state == "COMPLETED", (final, out[-2000:])
    assert (run_dir / "exit_code").read_text().strip() == "0"
    assert "#$ -pe mpi 3" in (run_dir / "job.sh").read_text()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["final"] and manifest["exit_status"] == 0 and manifest["backend"] == "mpi"
    assert len(manifest["workers"]) == 2  # ranks 1 and 2 of the 3 slots
    assert {t["status"] for t in manifest["tasks"].values()} == {"done"} and len(manifest["tasks"]) == 1 + 8 + 8 + 1
    assert manifest["output_hash"] == local_hash == (run_dir / "output_hash").read_text().strip()
    status = hpcdist("status", str(run_dir))
    assert status.returncode == 0 and f"job {job.job_id} (sge): COMPLETED" in status.stdout
    assert time.monotonic() - started < 40


def test_hpcdist_cancel_of_a_pipeline_job_leaves_130_and_says_cancelled(sge, project) -> None:
    # qdel -notify sends USR2 (forwarded as the walltime warning) before its KILL; the cancel noted in
    # job.json makes rank 0 stop as cancelled, not as at the walltime
    # (tasks that end within the shutdown's grace: the ranks get no signal but the warning here)
    from hpcdist.exitcodes import ExitCode

    spec = project("""\
        tasks:
          naps: {call: nap, map: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], kwargs: {seconds: 0.5}}
          sum: {call: total, args: [{ref: naps}]}
        """)
    proc = hpcdist("submit", str(spec), "--scheduler", "sge", "--set", "resources.walltime=00:05:00",
                   "--set", f"environment.python={sys.executable}", "--set", "environment.vars={MPIEXEC_TIMEOUT: 60}")
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.split("run directory: ", 1)[1].splitlines()[0])
    job = jobs.Job.from_run_dir(run_dir)
    try:
        deadline = time.monotonic() + JOB_TIMEOUT
        while not list((run_dir / "objects").glob("naps-*.meta.json")):
            assert time.monotonic() < deadline, "no task finished in time"
            time.sleep(0.1)
        cancel = hpcdist("cancel", str(run_dir))
        assert cancel.returncode == 0, cancel.stderr
        job.wait(timeout=JOB_TIMEOUT, poll=0.2, max_poll=1.0)
    finally:
        if job.status().state not in jobs.FINAL_STATES:
            job.cancel()
    out = (run_dir / f"sge-{job.job_id}.out").read_text(errors="replace")
    assert (run_dir / "exit_code").read_text().strip() == str(ExitCode.INTERRUPTED), out
    assert "cancel" in out and "BAD TERMINATION" not in out, out
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["final"] and manifest["exit_status"] == ExitCode.INTERRUPTED and manifest["reason"] == "interrupted"
