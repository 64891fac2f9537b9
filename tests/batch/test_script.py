"""Rendered scripts run for real under bash, with a fake interpreter and launcher.

Hostile values (quotes, $(...), backticks, semicolons, newlines) in variables, paths and
arguments must arrive verbatim and execute nothing; signals reach the launcher; the
launcher's exit status lands in <run dir>/exit_code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from hpcdist.batch import render
from hpcdist.errors import SpecError
from hpcdist.spec.model import JobSpec, load_spec

FAKE_MPIEXEC = """#!/bin/bash
# records how it was started, then behaves as FAKE_MODE says
if [ "${1:-}" = --version ]; then echo "${FAKE_VERSION:-fake mpiexec 1.0}"; exit 0; fi
if [ -n "${FAKE_STATUS:-}" ]; then printf '%s\n' "$FAKE_STATUS" > "$HPCDIST_STATE_DIR/status"; fi
printf '%s\\0' "$@" > "$RECORD/argv"
env -0 > "$RECORD/env"
pwd > "$RECORD/pwd"
if [ "${FAKE_MODE:-}" = wait-signal ]; then
  trap 'echo USR1 >> "$RECORD/signals"; kill "$SLEEP"; exit 7' USR1
  trap 'echo TERM >> "$RECORD/signals"; kill "$SLEEP"; exit 9' TERM
  sleep 30 &
  SLEEP=$!
  touch "$RECORD/started"
  wait "$SLEEP"
  exit 99
fi
exit "${FAKE_RC:-0}"
"""

HOSTILE = [
    "$(touch {m})",
    "`touch {m}`",
    "'; touch {m}; '",
    '"; touch {m}; "',
    "a\tb; touch {m}",  # a newline in a value is refused by validation (tests/spec/)
    "${{IFS}}touch${{IFS}}{m}",
]


def render_at(spec: JobSpec, system: str | None = None, timestamp: str = "T") -> str:
    """The job script of ``spec`` writing into its run directory for ``timestamp``."""
    return render(spec, system, spec.run_dir(timestamp))


def make_project(tmp_path: Path, system: str, **resources: object) -> tuple[Path, Path, Path]:
    """A spec in a folder whose name is hostile, with a fake python and mpiexec beside it."""
    marker = tmp_path / "PWNED"
    weird = tmp_path / "we'ird \"dir\"; $(touch PWNED) `x`"
    (weird / "bin").mkdir(parents=True)
    python = weird / "bin" / "python3"
    python.write_text("#!/bin/sh\nexit 0\n")
    mpiexec = weird / "bin" / "mpiexec"
    mpiexec.write_text(FAKE_MPIEXEC)
    for exe in (python, mpiexec):
        exe.chmod(0o755)
    (weird / "driver.py").write_text("")
    values = [v.format(m=marker) for v in HOSTILE]
    spec = {
        "name": "hostile",
        "scheduler": system,
        "resources": {"ranks": 2, "walltime": "00:10:00", **resources},
        "environment": {"vars": {f"V{i}": v for i, v in enumerate(values)}, "python": "bin/python3"},
        "program": {"script": "driver.py " + " ".join(f"'{v}'" if "'" not in v else f'"{v}"' for v in values[:2])},
        "output": str(tmp_path / "run"),
    }
    path = weird / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, marker, tmp_path / "run"


def run_script(script: Path, record: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    record.mkdir(exist_ok=True)
    full = {"PATH": os.environ["PATH"], "RECORD": str(record), **env}
    return subprocess.Popen(["bash", str(script)], env=full, cwd=record,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """Wait for the script; kill it (and fail) when it overruns. Returns its stderr."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return err.decode()


def write_script(path: Path, system: str) -> Path:
    script = path.parent.parent / f"job.{system}.sh"
    script.write_text(render_at(load_spec(path), system, timestamp="T"))
    assert subprocess.run(["bash", "-n", str(script)], timeout=30).returncode == 0
    return script


@pytest.mark.parametrize("system, env", [("slurm", {"SLURM_NTASKS": "2"}), ("sge", {"NSLOTS": "2"})])
def test_hostile_values_arrive_verbatim_and_execute_nothing(tmp_path: Path, system: str, env: dict) -> None:
    path, marker, run_dir = make_project(tmp_path, system)
    script = write_script(path, system)
    record = tmp_path / "record"
    proc = run_script(script, record, {**env, "FAKE_RC": "3"})
    err = finish(proc, 30)
    assert proc.returncode == 3, err
    assert not marker.exists(), "a value was executed"
    assert (run_dir / "exit_code").read_text() == "3\n"
    argv = (record / "argv").read_bytes().split(b"\0")[:-1]
    values = [v.format(m=marker) for v in HOSTILE]
    assert [a.decode() for a in argv] == [
        "-n", "2", str(path.parent / "bin" / "python3"), "-m", "hpcdist", "exec",
        str(path.parent / "driver.py"), values[0], values[1],
    ]
    environ = dict(e.split("=", 1) for e in (record / "env").read_bytes().decode().split("\0") if "=" in e)
    for i, value in enumerate(values):
        assert environ[f"V{i}"] == value
    assert environ["HPCDIST_RUN_DIR"] == str(run_dir)
    assert (record / "pwd").read_text().strip() == str(path.parent)


@pytest.mark.parametrize("field, value", [
    ("name", "x$(touch /tmp/pwned)"),
    ("resources.account", "a;b"),
    ("resources.queue", "q`id`"),
    ("resources.directives", ["--comment=$(id)"]),
    ("resources.directives", ["--x=1\n--y=2"]),
    ("resources.parallel_environment", "mpi 4; id"),
])
def test_values_that_cannot_be_quoted_are_refused(tmp_path: Path, field: str, value: object) -> None:
    (tmp_path / "d.py").write_text("")
    spec: dict = {"name": "a", "resources": {"ranks": 2}, "program": {"script": "d.py"}}
    section, _, key = field.rpartition(".")
    (spec[section] if section else spec)[key] = value
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match=field.replace(".", r"\.")):
        load_spec(path)


def wait_for(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


@pytest.mark.parametrize("sig, code, seen", [(signal.SIGUSR1, 7, "USR1"), (signal.SIGTERM, 9, "TERM")])
def test_signals_reach_the_launcher_and_the_status_is_kept(tmp_path: Path, sig: int, code: int, seen: str) -> None:
    path, _, run_dir = make_project(tmp_path, "slurm")
    script = write_script(path, "slurm")
    record = tmp_path / "record"
    proc = run_script(script, record, {"SLURM_NTASKS": "2", "FAKE_MODE": "wait-signal"})
    wait_for(record / "started")
    proc.send_signal(sig)
    err = finish(proc, 20)
    assert (record / "signals").read_text() == f"{seen}\n"
    assert proc.returncode == code, err
    assert (run_dir / "exit_code").read_text() == f"{code}\n"


def test_sge_warning_timer_fires_grace_seconds_before_h_rt(tmp_path: Path) -> None:
    # walltime 1 minute, grace 58 s: the script warns itself after 2 s
    path, _, run_dir = make_project(tmp_path, "sge", walltime=1, grace=58)
    script = write_script(path, "sge")
    record = tmp_path / "record"
    start = time.monotonic()
    proc = run_script(script, record, {"NSLOTS": "2", "FAKE_MODE": "wait-signal"})
    err = finish(proc, 30)
    elapsed = time.monotonic() - start
    assert (record / "signals").read_text() == "USR1\n"
    assert proc.returncode == 7, err
    assert 1.5 < elapsed < 10
    assert (run_dir / "exit_code").read_text() == "7\n"


def test_hydra_gets_disable_auto_cleanup_and_the_failure_timeout_is_exported(tmp_path: Path) -> None:
    path, _, run_dir = make_project(tmp_path, "slurm")
    script = write_script(path, "slurm")
    record = tmp_path / "record"
    proc = run_script(script, record, {"SLURM_NTASKS": "2", "FAKE_VERSION": "HYDRA build details:"})
    err = finish(proc, 30)
    assert proc.returncode == 0, err
    argv = [a.decode() for a in (record / "argv").read_bytes().split(b"\0")[:-1]]
    assert argv[:3] == ["-disable-auto-cleanup", "-n", "2"]
    environ = dict(e.split("=", 1) for e in (record / "env").read_bytes().decode().split("\0") if "=" in e)
    assert environ["HPCDIST_FAILURE_TIMEOUT"] == "2"


@pytest.mark.parametrize("status, launcher_rc, expected", [("0", "137", 0), ("6", "137", 6), ("", "137", 137),
                                                            ("junk", "9", 9)])
def test_the_status_comes_from_rank_0_not_from_the_launcher(tmp_path: Path, status: str, launcher_rc: str,
                                                            expected: int) -> None:
    # rank 0 wrote the run's status (or did not: it died); a dead worker made the launcher fail
    path, _, run_dir = make_project(tmp_path, "slurm")
    script = write_script(path, "slurm")
    state = run_dir / "ranks"
    state.mkdir(parents=True)
    (state / "status").write_text("0\n")  # left by an earlier job of this run: never read
    record = tmp_path / "record"
    proc = run_script(script, record, {"SLURM_NTASKS": "2", "FAKE_RC": launcher_rc, "FAKE_STATUS": status})
    err = finish(proc, 30)
    assert proc.returncode == expected, err
    assert (run_dir / "exit_code").read_text() == f"{expected}\n"
    if expected != int(launcher_rc):
        assert f"the launcher exited with status {launcher_rc}" in err


@pytest.mark.parametrize("status, expected", [("", 4), ("0", 0), ("6", 6)])
def test_under_openmpi_a_run_whose_rank_0_wrote_no_status_failed(tmp_path: Path, status: str, expected: int) -> None:
    # mpirun --runtime-options error-nonzero-status=false reports 0 however the ranks ended
    path, _, run_dir = make_project(tmp_path, "slurm")
    spec = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**spec, "launcher": "openmpi"}))
    mpirun = path.parent / "bin" / "mpirun"
    mpirun.write_text(FAKE_MPIEXEC)
    mpirun.chmod(0o755)
    script = write_script(path, "slurm")
    record = tmp_path / "record"
    proc = run_script(script, record, {"SLURM_NTASKS": "2", "FAKE_RC": "0", "FAKE_STATUS": status})
    err = finish(proc, 30)
    assert proc.returncode == expected, err
    assert (run_dir / "exit_code").read_text() == f"{expected}\n"
    argv = [a.decode() for a in (record / "argv").read_bytes().split(b"\0")[:-1]]
    assert argv[:4] == ["--with-ft", "ulfm", "--runtime-options", "error-nonzero-status=false"]
    assert ("rank 0 ended without a status" in err) == (status == "")
