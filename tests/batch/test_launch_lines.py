"""Launch lines under which the other ranks live on when a worker dies, the failure_timeout key,
and the run's status taken from rank 0 rather than from the launcher."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from hpcdist import launcher
from hpcdist.batch import render
from hpcdist.doctor import format_report, survival
from hpcdist.errors import HpcdistError, SpecError
from hpcdist.exitcodes import clear_status, read_status, run_status, write_status
from hpcdist.spec.model import load_spec


def write_spec(tmp_path: Path, **top: object) -> Path:
    (tmp_path / "d.py").write_text("")
    spec = {"name": "a", "scheduler": "slurm", "resources": {"ranks": 4, "walltime": "00:10:00"},
            "program": {"script": "d.py"}, **top}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def launch_of(script: str) -> str:
    return next(line for line in script.splitlines() if line.endswith(" &") and " -m hpcdist " in line)


def test_srun_keeps_the_step_when_a_rank_dies(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, launcher="srun"))
    assert launch_of(render(spec, None, spec.run_dir("T"))).startswith(
        'srun --mpi=pmi2 --kill-on-bad-exit=0 "$PYTHON" -m hpcdist exec ')


@pytest.mark.parametrize("system, ranks", [("slurm", '"$SLURM_NTASKS"'), ("sge", '"$NSLOTS"')])
def test_openmpi_renders_mpirun_with_ulfm(tmp_path: Path, system: str, ranks: str) -> None:
    spec = load_spec(write_spec(tmp_path, launcher="openmpi", launcher_args=["--oversubscribe"]))
    script = render(spec, system, spec.run_dir("T"))
    assert launch_of(script).startswith(f'"$MPIEXEC" --with-ft ulfm --runtime-options error-nonzero-status=false '
                                        f'-n {ranks} --oversubscribe "$PYTHON" -m hpcdist')
    assert 'MPIEXEC="$(dirname "$PYTHON")/mpirun"' in script
    assert "MPIEXEC_FT" not in script


@pytest.mark.parametrize("arg", ["--mpi=pmi2", "--kill-on-bad-exit=0", "-K0", "-disable-auto-cleanup"])
def test_openmpi_refuses_another_launchers_options(tmp_path: Path, arg: str) -> None:
    with pytest.raises(SpecError, match=r"launcher_args: item 0: .*launcher: openmpi"):
        load_spec(write_spec(tmp_path, launcher="openmpi", launcher_args=[arg]))


def test_openmpi_is_a_choice_in_the_schema() -> None:
    from hpcdist.spec.schema import json_schema

    launcher_schema = json_schema()["properties"]["launcher"]
    assert "openmpi" in launcher_schema["enum"]
    assert json_schema()["properties"]["failure_timeout"]["default"] == 2


@pytest.mark.parametrize("value, ok", [(5, True), (1, True), (0, False), ("2s", False), (1.5, False)])
def test_failure_timeout_is_validated_and_exported(tmp_path: Path, value: object, ok: bool) -> None:
    path = write_spec(tmp_path, failure_timeout=value)
    if not ok:
        with pytest.raises(SpecError, match="failure_timeout"):
            load_spec(path)
        return
    spec = load_spec(path)
    assert spec.failure_timeout == value
    assert f"export HPCDIST_FAILURE_TIMEOUT={value}\n" in render(spec, None, spec.run_dir("T"))


def test_failure_timeout_defaults_to_two_seconds(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path))
    assert spec.failure_timeout == 2
    assert "export HPCDIST_FAILURE_TIMEOUT=2\n" in render(spec, None, spec.run_dir("T"))


def fake_launcher(tmp_path: Path, version: str, body: str = "exit 0") -> str:
    path = tmp_path / "mpiexec"
    path.write_text(f"#!/bin/bash\nif [ \"$1\" = --version ]; then echo '{version}'; exit 0; fi\n"
                    f"printf '%s\\n' \"$@\" > \"$(dirname \"$0\")/argv\"\n{body}\n")
    path.chmod(0o755)
    launcher.mpi_flavour.cache_clear()
    return str(path)


@pytest.mark.parametrize("version, flags", [
    ("HYDRA build details:\n    Version: 5.0.2", ["-disable-auto-cleanup"]),
    ("mpiexec (Open MPI) 5.0.11", ["--with-ft", "ulfm", "--runtime-options", "error-nonzero-status=false"]),
    ("Intel(R) MPI Library", []),
])
def test_hpcdist_run_starts_the_launcher_with_its_survival_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 version: str, flags: list[str]) -> None:
    mpiexec = fake_launcher(tmp_path, version)
    monkeypatch.setattr(launcher, "find_mpiexec", lambda: mpiexec)
    assert launcher.local_launch(3) == [mpiexec, *flags, "-n", "3"]


def test_launcher_openmpi_refuses_another_mpi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mpiexec = fake_launcher(tmp_path, "HYDRA build details:")
    monkeypatch.setattr(launcher, "find_mpiexec", lambda: mpiexec)
    monkeypatch.setattr(launcher.shutil, "which", lambda name: None)
    monkeypatch.setattr(launcher.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(HpcdistError, match="not Open MPI's mpirun"):
        launcher.local_launch(3, "openmpi")


def test_status_file_round_trip(tmp_path: Path) -> None:
    env = {"HPCDIST_STATE_DIR": str(tmp_path)}
    assert read_status(tmp_path) is None and run_status(137, tmp_path) == 137
    write_status(0, env)
    assert read_status(tmp_path) == 0 and run_status(137, tmp_path) == 0
    (tmp_path / "status").write_text("999\n")
    assert run_status(9, tmp_path) == 9
    write_status(6, env)
    clear_status(env)
    assert run_status(137, tmp_path) == 137
    write_status(3, {})  # no state directory: nothing written, nothing raised


def test_run_script_exits_with_rank_0s_status_when_the_launcher_reports_a_dead_rank(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    # the fake launcher plays a world whose rank 0 finished (status 0) while a worker was SIGKILLed
    mpiexec = fake_launcher(tmp_path, "HYDRA", 'echo 0 > "$HPCDIST_STATE_DIR/status"; exit 137')
    monkeypatch.setattr(launcher, "find_mpiexec", lambda: mpiexec)
    script = tmp_path / "driver.py"
    script.write_text("")
    assert launcher.run_script(str(script), [], 3, failure_timeout=1.5) == 0
    assert "the launcher exited with status 137 (a rank died); rank 0 ended the run with status 0" in capfd.readouterr().err
    argv = (tmp_path / "argv").read_text().split("\n")
    assert argv[:3] == ["-disable-auto-cleanup", "-n", "3"]


def test_run_script_keeps_the_launchers_status_when_rank_0_died(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    mpiexec = fake_launcher(tmp_path, "HYDRA", "exit 9")
    monkeypatch.setattr(launcher, "find_mpiexec", lambda: mpiexec)
    script = tmp_path / "driver.py"
    script.write_text("")
    assert launcher.run_script(str(script), [], 3) == 9


def test_doctor_prints_which_launch_line_survives_which_death(tmp_path: Path) -> None:
    hydra = fake_launcher(tmp_path, "HYDRA build details:")
    rows = survival({"mpiexec": hydra, "srun": "/bin/true"})
    lines = {row["line"]: row["deaths"] for row in rows}
    assert lines["srun --mpi=pmi2 --kill-on-bad-exit=0"] == {"exit": "survive", "SIGKILL": "survive",
                                                            "SIGSEGV": "survive"}
    assert lines["mpiexec -disable-auto-cleanup"]["exit"] == "survive"
    assert lines["mpiexec -disable-auto-cleanup"]["SIGKILL"] == "all killed"
    report = {"python": {"version": "3", "executable": "p"}, "hpcdist": "0", "numpy": None,
              "mpi": {"error": "x"}, "commands": {}, "survival": rows,
              "allocation": {"system": None}, "backend": {"name": "local", "reason": "r"}, "smoke": [],
              "warnings": [], "problems": []}
    text = format_report(report)
    assert "survival   srun --mpi=pmi2 --kill-on-bad-exit=0  survive     survive     survive" in text
