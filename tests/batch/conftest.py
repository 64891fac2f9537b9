"""Fixtures for the rendering tests: example specs copied into a scratch project."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SPECS = Path(__file__).resolve().parent / "specs"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder holding the example specs, tests/batch/specs/*.yaml and their scripts."""
    root = tmp_path / "project"
    root.mkdir()
    for spec in sorted((REPO / "examples" / "pi").glob("*.yaml")) + sorted(SPECS.glob("*.yaml")):
        shutil.copy(spec, root / spec.name)
    # the driver scripts only need to exist: rendering never runs them
    (root / "pi.py").write_text("print('placeholder driver')\n")
    (root / "driver.py").write_text("print('placeholder driver')\n")
    return root
