"""The walltime warning through a real SLURM / Grid Engine: batch shell -> trap -> mpiexec -> every rank.

Skipped when the batch system does not answer, unless HPCDIST_REQUIRE_SLURM=1 /
HPCDIST_REQUIRE_SGE=1 (set by CI after .ci/*-up.sh) makes that a failure. The ranks run a
stand-in interpreter that waits for USR1, so the test needs nothing from the runtime.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hpcdist.batch import render
from hpcdist.commands import find_mpiexec, run_command
from hpcdist.spec.model import load_spec

RANKS = 4
WAITER = """\
import os, signal, sys, time
rank = os.environ.get("PMI_RANK", "x")
out = os.environ["HPCDIST_RUN_DIR"]
def on_signal(signum, frame):
    with open(os.path.join(out, f"signal-{rank}"), "w") as f:
        f.write(signal.Signals(signum).name)
    sys.exit(0)
signal.signal(signal.SIGUSR1, on_signal)
open(os.path.join(out, f"ready-{rank}"), "w").close()
time.sleep(50)
sys.exit(3)
"""


def reachable(argv: list[str], variable: str) -> None:
    try:
        ok = subprocess.run(argv, capture_output=True, timeout=15).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        message = f"{argv[0]} does not answer (bring the system up with .ci/*-up.sh)"
        if os.environ.get(variable) == "1":
            pytest.fail(f"{message}; {variable}=1", pytrace=False)
        pytest.skip(message)


def project(tmp_path: Path, scheduler: str, **resources: object) -> Path:
    """A spec whose 'interpreter' runs WAITER on every rank, with mpiexec beside it."""
    mpiexec = find_mpiexec()
    assert mpiexec, "no mpiexec"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "waiter.py").write_text(WAITER)
    fake = bin_dir / "python"
    fake.write_text(f'#!/bin/bash\nexec {sys.executable} {tmp_path / "waiter.py"}\n')
    fake.chmod(0o755)
    # a wrapper, not a symlink: Hydra looks for hydra_pmi_proxy beside the path it was started as
    wrapper = bin_dir / "mpiexec"
    wrapper.write_text(f'#!/bin/bash\nexec {mpiexec} "$@"\n')
    wrapper.chmod(0o755)
    (tmp_path / "driver.py").write_text("")
    spec = {
        "name": "signal-test",
        "scheduler": scheduler,
        "resources": {"ranks": RANKS, "walltime": 1, **resources},
        "environment": {"python": "bin/python", "vars": {"MPIEXEC_TIMEOUT": "55"}},
        "program": {"script": "driver.py"},
        "output": "run",
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    (tmp_path / "run").mkdir()
    script = tmp_path / "job.sh"
    spec = load_spec(path)
    script.write_text(render(spec, None, spec.run_dir("T")))
    return script


def wait_until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def assert_every_rank_warned(run: Path) -> None:
    assert sorted(p.name for p in run.glob("signal-*")) == [f"signal-{r}" for r in range(RANKS)]
    assert {p.read_text() for p in run.glob("signal-*")} == {"SIGUSR1"}
    wait_until(lambda: (run / "exit_code").exists(), 20, "exit_code")
    assert (run / "exit_code").read_text() == "0\n"


@pytest.mark.slurm
def test_slurm_usr1_reaches_every_rank(tmp_path: Path) -> None:
    reachable(["sinfo", "-h"], "HPCDIST_REQUIRE_SLURM")
    script = project(tmp_path, "slurm")
    run = tmp_path / "run"
    job_id = run_command(["sbatch", "--parsable", str(script)], timeout=30).stdout.strip().split(";")[0]
    try:
        wait_until(lambda: len(list(run.glob("ready-*"))) == RANKS, 40, "ranks to start")
        # --signal=B:USR1@grace fires on SLURM's one-minute tick; send the same signal now
        run_command(["scancel", "--signal=USR1", "--batch", job_id], timeout=30)
        wait_until(lambda: len(list(run.glob("signal-*"))) == RANKS, 20, "USR1 on every rank")
        assert_every_rank_warned(run)
    finally:
        run_command(["scancel", job_id], timeout=30, check=False)


@pytest.mark.sge
def test_sge_timer_warns_every_rank_grace_seconds_before_h_rt(tmp_path: Path) -> None:
    reachable(["qstat", "-f"], "HPCDIST_REQUIRE_SGE")
    # h_rt 60 s, grace 54 s: the script's own timer sends USR1 6 s after it starts
    script = project(tmp_path, "sge", grace=54)
    run = tmp_path / "run"
    job_id = run_command(["qsub", "-terse", "-wd", str(tmp_path), str(script)], timeout=30).stdout.strip()
    try:
        wait_until(lambda: len(list(run.glob("ready-*"))) == RANKS, 40, "ranks to start")
        started = time.monotonic()
        wait_until(lambda: len(list(run.glob("signal-*"))) == RANKS, 30, "USR1 on every rank")
        assert time.monotonic() - started < 10
        assert_every_rank_warned(run)
    finally:
        run_command(["qdel", job_id], timeout=30, check=False)
