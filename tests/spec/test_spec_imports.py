"""A pipeline module that exits, crashes, raises or blocks at import is reported by validate,
submit and run with a one-line error, within a time limit (issue 10, Validation)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hpcdist.errors import SpecError
from hpcdist.pipeline.imports import IMPORT_TIMEOUT_ENV, check_callables, resolve_callable
from hpcdist.spec.model import load_spec

# (module body, words of the problem)
MODULES = [
    ("import sys\nsys.exit(0)\n", "called sys.exit(0) at import"),
    ("import sys\nsys.exit(3)\n", "called sys.exit(3) at import"),
    ("import sys\nsys.exit('bye')\n", "called sys.exit('bye') at import"),
    ("raise SystemExit\n", "called sys.exit(None) at import"),
    ("import os\nos._exit(3)\n", "ended the process with exit status 3"),
    ("import os\nos._exit(0)\n", "ended the process with exit status 0"),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "killed the process with signal SIGKILL"),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "killed the process with signal SIGSEGV"),
    ("raise RuntimeError('bad\\nthing')\n", "failed: RuntimeError: bad thing"),
    ("raise KeyboardInterrupt\n", "raised KeyboardInterrupt at import"),
    ("import time\ntime.sleep(60)\n", f"did not finish within 1 s (does it block at import?); if it is only slow, "
                                      f"raise {IMPORT_TIMEOUT_ENV}"),
    ("while True:\n    pass\n", "did not finish within 1 s"),
    ("import sys\nsys.stdin.read()\ndef f():\n    return 1\nimport os\nos._exit(4)\n", "exit status 4"),
    ("import nonexistent_module_xyz\n", "failed: ModuleNotFoundError"),
    ("f = 3\n", "tasks:f is not callable"),
    ("", "module 'tasks' has no attribute 'f'"),
]


def write_project(folder: Path, body: str) -> Path:
    (folder / "tasks.py").write_text(body)
    spec = {
        "name": "imports", "scheduler": "slurm", "resources": {"ranks": 2, "walltime": "00:10:00"},
        "program": {"pipeline": {"module": "tasks", "tasks": {"t": {"call": "f"}}}},
    }
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(autouse=True)
def short_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(IMPORT_TIMEOUT_ENV, "1")
    sys.modules.pop("tasks", None)
    yield
    sys.modules.pop("tasks", None)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("body, words", MODULES, ids=[f"module{i}" for i in range(len(MODULES))])
def test_load_spec_reports_a_module_that_misbehaves_at_import(tmp_path: Path, body: str, words: str) -> None:
    path = write_project(tmp_path, body)
    start = time.monotonic()
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert time.monotonic() - start < 15  # loose: the 1 s limit, not the module's 60 s sleep
    lines = info.value.problems  # type: ignore[attr-defined]
    assert len(lines) == 1 and ": program.pipeline.tasks.t.call: " in lines[0] and words in lines[0], lines
    assert "tasks" not in sys.modules  # the check ran in a child process


def test_a_good_module_passes_and_others_still_get_checked(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text("def f():\n    return 1\n")
    (tmp_path / "bad.py").write_text("import os\nos._exit(7)\n")
    results = check_callables([("bad", "f"), ("good", "f"), ("good", "nope"), ("bad", "g")], (str(tmp_path),))
    assert results[("good", "f")] is None
    assert results[("good", "nope")] == "module 'good' has no attribute 'nope'"
    assert "exit status 7" in results[("bad", "f")] and "exit status 7" in results[("bad", "g")]


@pytest.mark.parametrize("value", ["abc", "0", "-1", "inf", "nan"])
def test_a_bad_import_timeout_is_a_spec_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    path = write_project(tmp_path, "def f():\n    return 1\n")
    monkeypatch.setenv(IMPORT_TIMEOUT_ENV, value)
    with pytest.raises(SpecError, match=f"{IMPORT_TIMEOUT_ENV}='{value}': expected a number of seconds > 0"):
        load_spec(path)


def test_resolve_callable_turns_sys_exit_into_an_import_error(tmp_path: Path) -> None:
    # on a worker: a task module that exits at import fails the task, not the worker
    (tmp_path / "exits_at_import.py").write_text("import sys\nsys.exit(0)\n")
    with pytest.raises(ImportError, match=r"importing 'exits_at_import' called sys.exit\(0\)"):
        resolve_callable("exits_at_import", "f", (str(tmp_path),))
    sys.modules.pop("exits_at_import", None)


COMMANDS = [
    ["validate", "job.yaml"],
    ["submit", "job.yaml", "--dry-run"],
    ["run", "job.yaml", "--backend", "thread", "--workers", "1"],
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("argv", COMMANDS, ids=[c[0] for c in COMMANDS])
@pytest.mark.parametrize("body, words", [MODULES[0], MODULES[4], MODULES[10]], ids=["sys.exit", "os._exit", "blocks"])
def test_validate_submit_and_run_report_it_in_one_line(tmp_path: Path, argv: list[str], body: str, words: str) -> None:
    write_project(tmp_path, body)
    env = dict(os.environ, **{IMPORT_TIMEOUT_ENV: "1"})
    proc = subprocess.run([sys.executable, "-m", "hpcdist", *argv], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=50)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip().splitlines()
    assert err[0] == "hpcdist: error: invalid job spec job.yaml (1 problem):", proc.stderr
    assert len(err) == 2 and err[1].startswith("job.yaml:") and words in err[1], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
