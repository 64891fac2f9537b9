"""hpcdist validate / render / schema from the command line."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hpcdist.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    for name in ("job.yaml", "job-slurm.yaml", "job-sge.yaml"):
        shutil.copy(REPO / "examples" / "pi" / name, tmp_path / name)
    (tmp_path / "pi.py").write_text("print('placeholder driver')\n")
    return tmp_path / "job.yaml"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
        sys.exit(0)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_validate_ok(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["validate", str(spec)], capsys)
    assert code == 0 and err == ""
    assert out == f"{spec}: valid (job pi, scheduler local, 4 ranks)\n"


def test_validate_reports_every_problem_and_exits_2(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = spec.read_text().replace("resources:", "resourses:\n  x: 1\nresources:").replace("ranks: 4", "ranks: 1")
    spec.write_text(text)
    code, out, err = run(["validate", str(spec)], capsys)
    lines = err.splitlines()
    assert code == 2 and out == ""
    assert lines[0] == f"hpcdist: error: invalid job spec {spec} (2 problems):"
    assert lines[1].endswith("resourses: unknown key (did you mean 'resources'?)")
    assert lines[1].startswith(f"{spec}:")
    assert lines[2].endswith("resources.ranks: expected an integer >= 2, got 1")


def test_set_and_scheduler_options(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["validate", str(spec), "--set", "resources.ranks=16", "--scheduler", "sge"], capsys)
    assert code == 0 and "scheduler sge, 16 ranks" in out
    code, _, err = run(["validate", str(spec), "--set", "resources.rank=16"], capsys)
    assert code == 2 and "--set resources.rank=16: resources.rank: unknown key (did you mean 'resources.ranks'?)" in err
    # --scheduler slurm needs a walltime: the override is validated like the file
    code, _, err = run(["validate", str(spec), "--set", "resources.walltime=null", "--scheduler", "slurm"], capsys)
    assert code == 2 and "resources.walltime: required for slurm jobs" in err


def test_render_to_stdout_and_file(spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["render", str(spec), "--scheduler", "slurm"], capsys)
    assert code == 0 and out.startswith("#!/bin/bash\n#SBATCH --job-name=pi\n")
    target = tmp_path / "job.sh"
    code, out, _ = run(["render", str(spec.parent / "job-sge.yaml"), "-o", str(target)], capsys)
    assert code == 0 and out == ""
    assert target.read_text().startswith("#!/bin/bash\n#$ -N pi-sge\n")
    assert target.stat().st_mode & stat.S_IXUSR


def test_render_errors_exit_2(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["render", str(spec)], capsys)
    assert code == 2 and err == "hpcdist: error: scheduler local has no job script; use --scheduler slurm or sge (or `hpcdist run`)\n"


def test_schema_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["schema"], capsys)
    schema = json.loads(out)
    assert code == 0 and schema["$schema"].endswith("2020-12/schema")
    assert set(schema["properties"]) >= {"name", "scheduler", "resources", "environment", "program", "output"}


def test_console_entry_point(spec: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "hpcdist", "validate", str(spec), "--set", "resources.ranks=x"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "resources.ranks: expected an integer >= 2, got 'x'" in proc.stderr
