"""The cache key follows the code a task reaches in the user's project, and nothing else."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from hpcdist.pipeline.codehash import reachable_code
from hpcdist.pipeline.keys import function_identity

# name -> (files before, files after, whether the key must change); the task is tasks:job
BASE = {
    "tasks.py": """
        import functools
        import helpers
        from helpers import h
        import pkg.sub
        FACTOR = 2
        TABLE = {"a": [1, 2]}

        def local(x):
            return x + 1

        def unrelated(x):
            return x - 1

        class Model:
            def run(self, x):
                return x * 3

        def deco(fn):
            @functools.wraps(fn)
            def inner(*a):
                return fn(*a)
            return inner
    """,
    "helpers.py": """
        import deep
        def h(x):
            return deep.g(x)
        def other(x):
            return x
    """,
    "deep.py": "def g(x):\n    return x * 10\n",
    "pkg/__init__.py": "",
    "pkg/sub.py": "def s(x):\n    return x\n",
    "site-packages/vendor.py": "def v(x):\n    return x\n",
}

JOBS = {
    "same_module": ("def job(x):\n    return local(x)\n", "tasks.py", "return x + 1", "return x + 2", True),
    "from_import": ("def job(x):\n    return h(x)\n", "deep.py", "x * 10", "x * 11", True),
    "module_attribute": ("def job(x):\n    return helpers.other(x)\n", "helpers.py", "return x\n", "return -x\n", True),
    "two_levels_deep": ("def job(x):\n    return helpers.h(x)\n", "deep.py", "x * 10", "x * 12", True),
    "package_submodule": ("def job(x):\n    return pkg.sub.s(x)\n", "pkg/sub.py", "return x", "return 2 * x", True),
    "constant": ("def job(x):\n    return x * FACTOR\n", "tasks.py", "FACTOR = 2", "FACTOR = 3", True),
    "constant_table": ("def job(x):\n    return TABLE[x]\n", "tasks.py", '[1, 2]', '[1, 3]', True),
    "class_method": ("def job(x):\n    return Model().run(x)\n", "tasks.py", "x * 3", "x * 4", True),
    "decorated": ("@deco\ndef job(x):\n    return local(x)\n", "tasks.py", "return x + 1", "return x + 5", True),
    "default_argument": ("def job(x, f=local):\n    return f(x)\n", "tasks.py", "return x + 1", "return x + 7", True),
    "closure": ("def _make():\n    fn = local\n    def job(x):\n        return fn(x)\n    return job\njob = _make()\n",
                "tasks.py", "return x + 1", "return x + 8", True),
    "lambda_inside": ("def job(x):\n    return list(map(lambda y: local(y), [x]))\n", "tasks.py",
                      "return x + 1", "return x + 9", True),
    "import_inside": ("def job(x):\n    import deep\n    return deep.g(x)\n", "deep.py", "x * 10", "x * 13", True),
    "own_body": ("def job(x):\n    return x\n", "tasks.py", "return x\n", "return x + 0\n", True),
    "unrelated_function": ("def job(x):\n    return local(x)\n", "tasks.py", "return x - 1", "return x - 2", False),
    "unrelated_helper": ("def job(x):\n    return h(x)\n", "helpers.py", "def other(x):\n    return x",
                         "def other(x):\n    return x * 2", False),
    "installed_package": ("import vendor\ndef job(x):\n    return vendor.v(x)\n", "site-packages/vendor.py",
                          "return x", "return x + 1", False),
}


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def _identity(root: Path, version: str | None = None) -> tuple[str, list[str]]:
    for name in ("tasks", "helpers", "deep", "pkg", "pkg.sub", "vendor"):
        sys.modules.pop(name, None)
    fn = importlib.import_module("tasks").job
    return function_identity(fn, [str(root)], version), reachable_code(fn, [str(root)])[1]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path / "site-packages"))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("tasks", "helpers", "deep", "pkg", "pkg.sub", "vendor"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("case", sorted(JOBS))
def test_a_code_change_the_task_can_reach_changes_its_key(project: Path, case: str) -> None:
    job, file, old, new, changes = JOBS[case]
    files = dict(BASE)
    files["tasks.py"] = textwrap.dedent(files["tasks.py"]) + "\n" + job
    _write(project, files)
    before, covered = _identity(project)
    path = project / file
    text = path.read_text()
    assert old in text, (case, text)
    path.write_text(text.replace(old, new, 1))
    after, _ = _identity(project)
    assert (before != after) is changes, (case, covered)
    assert before.startswith("tasks:")


def test_version_changes_the_key_and_nothing_else_does(project: Path) -> None:
    files = dict(BASE)
    files["tasks.py"] = textwrap.dedent(files["tasks.py"]) + "\ndef job(x):\n    return x\n"
    _write(project, files)
    plain, _ = _identity(project)
    assert _identity(project)[0] == plain  # deterministic
    one, two = _identity(project, "1")[0], _identity(project, "2")[0]
    assert len({plain, one, two}) == 3 and _identity(project, "1")[0] == one


def test_what_is_hashed_is_listed(project: Path) -> None:
    files = dict(BASE)
    files["tasks.py"] = textwrap.dedent(files["tasks.py"]) + "\ndef job(x):\n    return h(x) * FACTOR\n"
    _write(project, files)
    _, covered = _identity(project)
    assert "function tasks:job" in covered and "function helpers:h" in covered and "module deep" in covered
    assert any(c.endswith("global FACTOR") for c in covered)
    assert not any("vendor" in c or "functools" in c for c in covered)
