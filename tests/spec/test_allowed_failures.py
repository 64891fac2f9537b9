"""The allowed_failures knob: the spec key, its export in rendered scripts and by ``hpcdist run SPEC``,
and the environment variable's reader (the end-to-end run is in tests/backends/test_goodbye.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from hpcdist.batch import render
from hpcdist.envvars import env_count
from hpcdist.errors import HpcdistError, SpecError
from hpcdist.spec.model import load_spec
from hpcdist.spec.schema import json_schema


def write_spec(tmp_path: Path, script: str = "", **top: object) -> Path:
    (tmp_path / "d.py").write_text(script)
    spec = {"name": "a", "scheduler": "slurm", "resources": {"ranks": 4, "walltime": "00:10:00"},
            "program": {"script": "d.py"}, **top}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("value, ok", [(1, True), (5, True), (1000, True), (0, False), (-1, False), (1001, False),
                                       ("3", False), (2.5, False)])
def test_allowed_failures_is_validated_and_exported(tmp_path: Path, value: object, ok: bool) -> None:
    path = write_spec(tmp_path, allowed_failures=value)
    if not ok:
        with pytest.raises(SpecError, match="allowed_failures"):
            load_spec(path)
        return
    spec = load_spec(path)
    assert spec.allowed_failures == value
    for system in ("slurm", "sge"):
        assert f"export HPCDIST_ALLOWED_FAILURES={value}\n" in render(spec, system, spec.run_dir("T"))


def test_allowed_failures_defaults_to_three_like_the_scheduler_state(tmp_path: Path) -> None:
    from hpcdist.runtime.scheduling.recovery import DEFAULT_ALLOWED_FAILURES

    spec = load_spec(write_spec(tmp_path))
    assert spec.allowed_failures == DEFAULT_ALLOWED_FAILURES == 3
    assert json_schema()["properties"]["allowed_failures"]["default"] == 3
    script = render(spec, None, spec.run_dir("T"))
    assert "export HPCDIST_ALLOWED_FAILURES=3\n" in script
    # before environment.vars, which may still set it
    assert script.index("HPCDIST_ALLOWED_FAILURES") < script.index("HPCDIST_JOB_NAME")


def test_hpcdist_run_spec_gives_the_world_it_starts_the_specs_allowed_failures(tmp_path: Path, capfd,
                                                                              monkeypatch) -> None:
    from hpcdist.pipeline.run import run_spec

    monkeypatch.setenv("HPCDIST_ALLOWED_FAILURES", "7")
    script = "import os\nprint('allowed', os.environ['HPCDIST_ALLOWED_FAILURES'])\n"
    path = write_spec(tmp_path, script, scheduler="local", allowed_failures=2)
    assert run_spec(str(path), backend="process", workers=1, timeout=60) == 0
    assert "allowed 2" in capfd.readouterr().out
    assert os.environ["HPCDIST_ALLOWED_FAILURES"] == "7"  # as it was, after the run


@pytest.mark.parametrize("text, value", [("", 3), ("1", 1), (" 12 ", 12)])
def test_env_count_reads_a_positive_whole_number(text: str, value: int) -> None:
    assert env_count("HPCDIST_ALLOWED_FAILURES", 3, {"HPCDIST_ALLOWED_FAILURES": text}) == value
    assert env_count("HPCDIST_ALLOWED_FAILURES", 3, {}) == 3


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "three", "1e3"])
def test_env_count_rejects_anything_else(text: str) -> None:
    with pytest.raises(HpcdistError, match=r"HPCDIST_ALLOWED_FAILURES=.*positive whole number"):
        env_count("HPCDIST_ALLOWED_FAILURES", 3, {"HPCDIST_ALLOWED_FAILURES": text})
