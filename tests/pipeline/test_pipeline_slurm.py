"""A pipeline job under the real SLURM: warning signal -> walltime status, complete manifest, resume.

Skipped when no SLURM controller answers, unless HPCDIST_REQUIRE_SLURM=1 (then a failure),
like tests/integration.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpcdist import jobs
from hpcdist.errors import CommandError
from hpcdist.launch import run_command
from hpcdist.pipeline import status

pytestmark = pytest.mark.slurm
JOB_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def slurm() -> None:
    try:
        run_command(["sinfo", "-h", "-o", "%T"], timeout=15)
    except CommandError as exc:
        message = f"SLURM is not reachable ({exc}); bring it up with .ci/slurm-up.sh"
        if os.environ.get("HPCDIST_REQUIRE_SLURM") == "1":
            pytest.fail(message + " [HPCDIST_REQUIRE_SLURM=1 makes this a failure]", pytrace=False)
        pytest.skip(message)


def test_warning_signal_ends_a_pipeline_job_with_the_walltime_status_and_it_resumes(slurm, project,
                                                                                    tmp_path: Path) -> None:
    spec = project("""\
        tasks:
          naps: {call: nap, map: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], kwargs: {seconds: 0.5}}
          sum: {call: total, args: [{ref: naps}]}
        """)
    overrides = ["scheduler=slurm", "resources.walltime=00:05:00", f"environment.python={sys.executable}",
                 "environment.vars={MPIEXEC_TIMEOUT: 60}"]
    job = jobs.submit(str(spec), overrides=overrides)
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
    assert (job.run_dir / "exit_code").read_text().strip() == str(status.WALLTIME)
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
