"""Golden job scripts for the example specs, and shellcheck on every one of them.

Regenerate on purpose with ``HPCDIST_REGEN_GOLDEN=1 pytest tests/batch/test_golden.py``
and review the diff. Golden files hold no machine path: the scratch project folder is
replaced with /PROJECT.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hpcdist.batch import render
from hpcdist.spec.model import JobSpec, load_spec

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
#: what the scratch project's path is replaced with in golden files
PLACEHOLDER = "/PROJECT"
TIMESTAMP = "20240101-000000"

#: (spec file, system) -> golden file name
CASES = [
    ("job.yaml", "slurm"),
    ("job.yaml", "sge"),
    ("job-slurm.yaml", "slurm"),
    ("job-sge.yaml", "sge"),
    ("full.yaml", "slurm"),
    ("pipeline.yaml", "slurm"),
    ("pipeline.yaml", "sge"),
    ("pipeline-resubmit.yaml", "slurm"),
    ("pipeline-resubmit.yaml", "sge"),
]


def render_at(spec: JobSpec, system: str | None = None, timestamp: str = "T") -> str:
    """The job script of ``spec`` writing into its run directory for ``timestamp``."""
    return render(spec, system, spec.run_dir(timestamp))


def golden_name(spec: str, system: str) -> str:
    return f"{spec.removesuffix('.yaml')}.{system}.sh"


def rendered(project: Path, spec: str, system: str) -> str:
    text = render_at(load_spec(project / spec), system, timestamp=TIMESTAMP)
    return text.replace(str(project), PLACEHOLDER)


@pytest.mark.parametrize("spec, system", CASES)
def test_golden(project: Path, spec: str, system: str) -> None:
    path = GOLDEN / golden_name(spec, system)
    text = rendered(project, spec, system)
    if os.environ.get("HPCDIST_REGEN_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path.name} missing: run with HPCDIST_REGEN_GOLDEN=1 and review it"
    assert text == path.read_text(), f"{path.name} differs: if intended, regenerate with HPCDIST_REGEN_GOLDEN=1"
    assert "/tmp" not in text and "pytest" not in text


def test_every_golden_file_belongs_to_a_case() -> None:
    assert sorted(p.name for p in GOLDEN.glob("*.sh")) == sorted(golden_name(*c) for c in CASES)


def shellcheck() -> str:
    exe = shutil.which("shellcheck")
    if exe is None:
        message = "shellcheck not installed (apt-get install shellcheck)"
        if os.environ.get("HPCDIST_REQUIRE_SHELLCHECK") == "1":
            pytest.fail(message + "; HPCDIST_REQUIRE_SHELLCHECK=1")
        pytest.skip(message)
    return exe


@pytest.mark.parametrize("name", [golden_name(*c) for c in CASES])
def test_shellcheck_passes_on_golden_scripts(name: str) -> None:
    exe = shellcheck()
    proc = subprocess.run([exe, "--shell=bash", "--severity=style", str(GOLDEN / name)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_catches_a_broken_script(tmp_path: Path) -> None:
    # the check above must be able to fail
    exe = shellcheck()
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/bash\nrm -rf $DIR/*\n")
    assert subprocess.run([exe, str(bad)], capture_output=True, timeout=60).returncode != 0
