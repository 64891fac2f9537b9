"""Fixtures for the validation tables: a project folder, a spec's problems, a valid spec."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from hpcdist.errors import SpecError
from hpcdist.spec.model import JobSpec, load_spec


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with driver.py and site/slurm.sh, where specs are written."""
    (tmp_path / "driver.py").write_text("print('driver')\n")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "slurm.sh").write_text("#!/bin/bash\n${directives}\n${launch}\n")
    return tmp_path


@pytest.fixture
def problems_of(project: Path) -> Callable[..., list[str]]:
    """``problems_of(text)``: the problem lines of the SpecError for spec ``text`` (file shown as job.yaml)."""

    def run(text: str, overrides: tuple[str, ...] = ()) -> list[str]:
        path = project / "job.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(SpecError) as info:
            load_spec(path, overrides)
        lines = info.value.problems  # type: ignore[attr-defined]
        for line in lines:  # one problem, one line, whatever the input held
            assert line.isprintable(), repr(line)
        return [line.replace(f"{path}:", "job.yaml:") for line in lines]

    return run


@pytest.fixture
def load(project: Path) -> Callable[..., JobSpec]:
    """``load(text)``: the JobSpec of spec ``text`` (fails on a SpecError)."""

    def run(text: str, overrides: tuple[str, ...] = ()) -> JobSpec:
        path = project / "job.yaml"
        path.write_text(text, encoding="utf-8")
        return load_spec(path, overrides)

    return run
