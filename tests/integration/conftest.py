"""Fixtures for the tests against a real SLURM / Grid Engine (CI starts them with .ci/*-up.sh).

A system that is not reachable skips its tests, unless HPCDIST_REQUIRE_SLURM=1 /
HPCDIST_REQUIRE_SGE=1 is set: then its absence is a failure.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hpcdist.batch import jobs

JOB_TIMEOUT = 60.0  # seconds any one test job may take, queueing included
PI_SPEC = Path(__file__).resolve().parents[2] / "examples" / "pi" / "job.yaml"


RANKS_PY = """\
import os, sys
from mpi4py import MPI
comm = MPI.COMM_WORLD
line = f"rank {comm.rank} of {comm.size}\\n"
sys.stdout.write(line)  # one write per line: ranks' lines must not interleave
with open(os.path.join(os.environ["HPCDIST_RUN_DIR"], f"rank-{comm.rank}.txt"), "w") as f:
    f.write(line)
"""


def write_ranks_spec(tmp_path: Path, scheduler: str, extra: str = "") -> Path:
    """A 4-rank spec whose job runs a plain mpi4py script under the job's mpiexec.

    Until the runtime (``hpcdist exec``) is wired in, a spec-local template replaces the
    built-in launch line: the directives, interpreter and mpiexec lookup are still rendered.
    """
    script = tmp_path / "ranks.py"
    script.write_text(RANKS_PY)
    template = tmp_path / "ranks-template.sh"
    template.write_text(
        "#!/bin/bash\n${directives}\nset -euo pipefail\n${exports}\n"
        "export HPCDIST_RUN_DIR=${run_dir}\ncd ${workdir}\n"
        "PYTHON=${python}\n${find_launcher}\n"
        f'"$MPIEXEC" -n ${{ranks}} "$PYTHON" {shlex.quote(str(script))}\n'
    )
    return _write_spec(tmp_path, "ranks", scheduler, "ranks.py", "ranks-template.sh", extra)


def write_sleep_spec(tmp_path: Path, scheduler: str, seconds: int = 60, extra: str = "") -> Path:
    """A spec whose job only sleeps (for status and cancel)."""
    (tmp_path / "noop.py").write_text("")
    (tmp_path / "sleep-template.sh").write_text(f"#!/bin/bash\n${{directives}}\nsleep {seconds}\n")
    return _write_spec(tmp_path, "sleeper", scheduler, "noop.py", "sleep-template.sh", extra)


def _write_spec(tmp_path: Path, name: str, scheduler: str, script: str, template: str, extra: str) -> Path:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(
        f"name: {name}\n"
        f"scheduler: {scheduler}\n"
        "resources:\n  ranks: 4\n  walltime: \"00:05:00\"\n"
        f"{extra}"
        "environment:\n"
        f"  python: {sys.executable}\n"
        "  vars:\n    MPIEXEC_TIMEOUT: 60\n"
        f"program:\n  script: {script}\n"
        f"template: {template}\n"
        "output: runs/{name}-{timestamp}\n"
    )
    return spec


def pi_overrides(tmp_path: Path) -> list[str]:
    """``--set`` arguments that run the pi example with this interpreter, writing under tmp_path."""
    return ["--set", f"environment.python={sys.executable}", "--set", f"output={tmp_path}/runs/{{name}}-{{timestamp}}"]


def wait_or_cancel(job: Any, timeout: float = JOB_TIMEOUT) -> Any:
    """``job.wait``; a job still unfinished after ``timeout`` is cancelled and the test fails
    with the tail of the job's output (no test leaves a job behind in the queue)."""
    try:
        return job.wait(timeout=timeout, poll=0.2, max_poll=1.0)
    except TimeoutError as exc:
        tail = ""
        for out in sorted(job.run_dir.glob("*.out")) if job.run_dir else ():
            tail += f"\n--- {out.name} ---\n" + "\n".join(out.read_text(errors="replace").splitlines()[-30:])
        job.cancel()
        pytest.fail(f"{exc}; cancelled it.{tail or ' (no output yet)'}", pytrace=False)


def hpcdist_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m hpcdist ARGS`` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "hpcdist", *args], capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def run_dirs(tmp_path: Path) -> list[str]:
    """Entries of the specs' runs/ folder (hidden temporary ones included)."""
    runs = tmp_path / "runs"
    return sorted(os.listdir(runs)) if runs.exists() else []


PI_LINE = r"pi ~ 3\.1\d* from 1000000 samples in 32 tasks on 3 workers \(ranks \[1, 2, 3\]\)"


def wait_until(job: Any, state: str, timeout: float) -> Any:
    """Poll ``job`` until it reaches ``state`` or a final state, or ``timeout`` passes."""
    end = time.monotonic() + timeout
    while True:
        st = job.status()
        if st.state == state or st.state in jobs.FINAL_STATES or time.monotonic() > end:
            return st
        time.sleep(0.2)


def check_four_rank_job(system: str, tmp_path: Path) -> Any:
    """Submit the plain mpi4py 4-rank spec to ``system``; check one world of 4 ranks ran.

    Returns:
        The job's final status, for checks particular to a system.
    """
    spec = write_ranks_spec(tmp_path, "local")
    result = hpcdist_cli("submit", str(spec), "--scheduler", system)
    assert result.returncode == 0, result.stderr
    run_dir = Path(re.search(r"^run directory: (.+)$", result.stdout, re.M).group(1))
    job_id = re.search(r"^job id: (\d+)$", result.stdout, re.M).group(1)
    assert run_dirs(tmp_path) == [run_dir.name]

    job = jobs.Job.from_run_dir(run_dir)
    assert (job.job_id, job.system) == (job_id, system)
    st = wait_or_cancel(job)
    output = run_dir / f"{system}-{job_id}.out"
    assert st.state == "COMPLETED", output.read_text() if output.exists() else st
    # one world of 4 ranks (plain srun, or a foreign mpiexec, would give four worlds of 1)
    assert sorted((run_dir / f"rank-{r}.txt").read_text() for r in range(4)) == [f"rank {r} of 4\n" for r in range(4)]
    assert sorted(output.read_text().splitlines()) == [f"rank {r} of 4" for r in range(4)]

    status = hpcdist_cli("status", str(run_dir))
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"job {job_id} ({system}): COMPLETED" in status.stdout
    return st


def check_pi_example(system: str, tmp_path: Path) -> None:
    """Submit examples/pi to ``system`` through ``hpcdist submit`` and check the 4-rank run."""
    result = hpcdist_cli("submit", str(PI_SPEC), "--scheduler", system, *pi_overrides(tmp_path))
    assert result.returncode == 0, result.stderr
    run_dir = Path(re.search(r"^run directory: (.+)$", result.stdout, re.M).group(1))
    assert run_dir.parent == tmp_path / "runs"
    job = jobs.Job.from_run_dir(run_dir)
    st = wait_or_cancel(job)
    output = (run_dir / f"{system}-{job.job_id}.out").read_text()
    assert st.state == "COMPLETED", output
    assert st.exit_code == 0 and (run_dir / "exit_code").read_text().strip() == "0"
    # rank 0 schedules; the three other ranks of the 4-rank world are the workers
    assert re.search(PI_LINE, output), output


@pytest.fixture
def batch() -> object:
    """The helpers above, for the tests (integration tests import nothing from conftest)."""

    class Helpers:
        ranks_spec = staticmethod(write_ranks_spec)
        sleep_spec = staticmethod(write_sleep_spec)
        cli = staticmethod(hpcdist_cli)
        run_dirs = staticmethod(run_dirs)
        pi_overrides = staticmethod(pi_overrides)
        pi_spec = PI_SPEC
        check_pi_example = staticmethod(check_pi_example)
        check_four_rank_job = staticmethod(check_four_rank_job)
        wait_until = staticmethod(wait_until)
        wait = staticmethod(wait_or_cancel)
        job_timeout = JOB_TIMEOUT

    return Helpers
