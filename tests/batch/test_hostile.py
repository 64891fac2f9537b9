"""Hostile values in every string key that reaches a job script, rendered for SLURM and SGE.

For each value, either the spec is refused (SpecError from validation or RenderError at
rendering, naming the key), or the rendered script, run with bash against a recording fake
mpiexec, hands the job exactly that value (argv, environment, working directory...) and no
marker file appears. Every accepted script passes shellcheck. tests/integration/test_hostile_batch.py
sends a subset through the real sbatch and qsub.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import pytest
from hostile import (
    HOSTILE, base_spec, dump, make_tools, recorded_argv, recorded_env, run_bash, shellcheck, values,
)

from hpcdist.batch import render
from hpcdist.errors import RenderError, SpecError
from hpcdist.spec.model import JobSpec, load_spec

SYSTEM_ENV = {"slurm": {"SLURM_NTASKS": "2"}, "sge": {"NSLOTS": "2"}}
# characters a value written into a directive line may hold (see hpcdist.batch.values)
DIRECTIVE_SAFE = re.compile(r"[A-Za-z0-9_.,:=/@+%\[\]-]+")


def render_at(spec: JobSpec, system: str | None = None, timestamp: str = "T") -> str:
    """The job script of ``spec`` writing into its run directory for ``timestamp``."""
    return render(spec, system, spec.run_dir(timestamp))


class Case:
    """One key: how to put a value into the spec, and what the job must then have received."""

    def __init__(self, key: str, place: Callable, check: Callable | None = None, directive: str | None = None,
                 path: bool = False) -> None:
        self.key, self.place, self.check, self.directive, self.path = key, place, check, directive, path


def _set(*keys: str) -> Callable:
    def place(spec: dict, value: str, root: Path) -> None:
        node = spec
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return place


def _env_value(spec, value, root):
    spec["environment"]["vars"]["HOSTILE"] = value


def _env_key(spec, value, root):
    spec["environment"]["vars"][value] = "x"


def _script_arg(spec, value, root):
    import shlex

    spec["program"]["script"] = shlex.join(["driver.py", value])


def _workdir(spec, value, root):
    try:
        (root / value).mkdir(parents=True)
    except (OSError, ValueError):
        pass  # a value no directory name can hold: the spec must then refuse it
    spec["environment"]["workdir"] = value


def _python(spec, value, root):
    try:
        make_tools(root, value)
    except (OSError, ValueError):
        pass
    spec["environment"]["python"] = f"bin/{value}"


def _output(spec, value, root):
    spec["output"] = str(root / "runs" / value)


def _argv(record):
    return recorded_argv(record)


CASES = [
    Case("name", _set("name"), lambda rec, v, root: recorded_env(rec)["HPCDIST_JOB_NAME"] == v),
    Case("resources.queue", _set("resources", "queue"), directive="queue"),
    Case("resources.account", _set("resources", "account"), directive="account"),
    Case("resources.parallel_environment", _set("resources", "parallel_environment"), directive="pe"),
    Case("resources.memory_resource", _set("resources", "memory_resource"), directive="mem"),
    Case("resources.directives", lambda s, v, r: s["resources"].__setitem__("directives", [v]), directive="extra"),
    Case("environment.modules", lambda s, v, r: s["environment"].__setitem__("modules", [v]),
         lambda rec, v, root: recorded_argv(rec, "module") == ["load", v]),
    Case("environment.vars (value)", _env_value, lambda rec, v, root: recorded_env(rec)["HOSTILE"] == v),
    Case("environment.vars (name)", _env_key, lambda rec, v, root: recorded_env(rec)[v] == "x"),
    Case("environment.workdir", _workdir, lambda rec, v, root: (rec / "pwd").read_text() == f"{os.path.normpath(root / os.path.expanduser(v))}\n",
         path=True),
    Case("environment.python", _python, lambda rec, v, root: _argv(rec)[2] == os.path.normpath(root / "bin" / v), path=True),
    Case("program.script (argument)", _script_arg, lambda rec, v, root: _argv(rec)[-2:] == [str(root / "driver.py"), v]),
    Case("launcher_args", lambda s, v, r: s.__setitem__("launcher_args", [v]),
         lambda rec, v, root: _argv(rec)[2] == v),
    Case("output", _output, lambda rec, v, root: recorded_env(rec)["HPCDIST_RUN_DIR"] == os.path.normpath(root / "runs" / v)
         and (Path(os.path.normpath(root / "runs" / v)) / "exit_code").read_text() == "0\n", path=True),
]


def _directive_values(script: str, prefix: str) -> list[str]:
    return [line[len(prefix):] for line in script.splitlines() if line.startswith(prefix)]


def test_there_are_at_least_60_hostile_values():
    assert len(HOSTILE) >= 60 and len(set(HOSTILE)) == len(HOSTILE)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("system", ["slurm", "sge"])
@pytest.mark.parametrize("case", CASES, ids=[c.key for c in CASES])
def test_hostile_value_is_refused_or_arrives_byte_for_byte(tmp_path: Path, system: str, case: Case) -> None:
    marker = tmp_path / "MARKER"
    accepted, scripts = 0, []
    for i, value in enumerate(values(marker)):
        root = tmp_path / f"v{i}"
        root.mkdir()
        bin_dir = make_tools(root)
        (root / "driver.py").write_text("")
        spec = base_spec(system, root / "run")
        try:
            case.place(spec, value, root)
            path = dump(spec, root / "job.yaml")
            script = render_at(load_spec(path), system, timestamp="T")
        except (SpecError, RenderError) as exc:
            leaf = case.key.split(" ")[0].rsplit(".", 1)[-1]
            assert leaf in str(exc) or (case.key == "output" and "run directory" in str(exc)), (value, str(exc))
            continue
        accepted += 1
        script_path = root / "job.sh"
        script_path.write_text(script, encoding="utf-8")
        scripts.append(script_path)
        prefix = "#SBATCH " if system == "slurm" else "#$ "
        # a value in a directive line is never quoted: it must be in the directive parser's safe set
        for line in _directive_values(script, prefix):
            for word in line.replace("/sge-$JOB_ID.out", "/sge-ID.out").split(" "):
                assert DIRECTIVE_SAFE.fullmatch(word), (case.key, value, line)
        for line in script.splitlines():
            assert not re.match(r"#\s*(SBATCH|\$)", line) or line.startswith(prefix), (value, line)
        if case.directive is not None:
            if system == "sge" or case.directive not in ("pe", "mem"):  # SLURM has no PE nor memory resource
                assert value in script, (case.key, value)
            continue  # read by the batch system only: tests/integration/test_hostile_batch.py submits them
        run_bash(script_path, root / "record", bin_dir, SYSTEM_ENV[system])
        assert not marker.exists(), f"{case.key}: {value!r} executed something"
        assert case.check(root / "record", value, root), (case.key, value)
    assert not marker.exists()
    # shellcheck takes ~0.15 s a script: a spread of them here, all values at once in the test below
    problems = shellcheck(scripts[:: max(1, len(scripts) // 12)])
    assert problems is None, problems
    if case.key in ("environment.vars (value)", "program.script (argument)", "launcher_args"):
        # the quoted keys take most values literally; only control characters and such are refused
        assert accepted >= 80, accepted


@pytest.mark.parametrize("system", ["slurm", "sge"])
def test_one_script_with_every_accepted_value_passes_shellcheck(tmp_path: Path, system: str) -> None:
    # every value that some key takes literally, all in one spec: as variables, script
    # arguments and launcher arguments; refused values are dropped one by one
    root = tmp_path / "p"
    root.mkdir()
    bin_dir = make_tools(root)
    (root / "driver.py").write_text("")
    marker = tmp_path / "MARKER"
    kept = []
    for value in values(marker):
        spec = base_spec(system, root / "run")
        spec["environment"]["vars"]["V"] = value
        try:
            render_at(load_spec(dump(spec, root / "job.yaml")), system, timestamp="T")
        except (SpecError, RenderError):
            continue
        kept.append(value)
    assert len(kept) >= 80
    import shlex

    spec = base_spec(system, root / "run")
    spec["environment"]["vars"] = {f"V{i}": v for i, v in enumerate(kept[:100]) if len(v) < 10_000}
    spec["program"]["script"] = shlex.join(["driver.py", *spec["environment"]["vars"].values()])
    spec["launcher_args"] = list(spec["environment"]["vars"].values())
    script = root / "job.sh"
    script.write_text(render_at(load_spec(dump(spec, root / "job.yaml")), system, timestamp="T"), encoding="utf-8")
    problems = shellcheck([script])
    assert problems is None, problems
    run_bash(script, root / "record", bin_dir, SYSTEM_ENV[system])
    assert not marker.exists()
    args = list(spec["environment"]["vars"].values())
    assert recorded_argv(root / "record") == ["-n", "2", *args, str(root / "bin" / "python3"), "-m", "hpcdist",
                                               "exec", str(root / "driver.py"), *args]
    env = recorded_env(root / "record")
    assert {k: env[k] for k in spec["environment"]["vars"]} == spec["environment"]["vars"]


@pytest.mark.parametrize("system", ["slurm", "sge"])
def test_setup_lines_are_shell_code_but_never_hold_control_characters(tmp_path: Path, system: str) -> None:
    # environment.setup is shell code by design (docs/batch.md): each line reaches the script as one
    # line, verbatim, or is refused; a control character never gets in
    for i, value in enumerate(values(tmp_path / "MARKER")):
        root = tmp_path / f"v{i}"
        root.mkdir()
        make_tools(root)
        (root / "driver.py").write_text("")
        spec = base_spec(system, root / "run")
        spec["environment"]["setup"] = [value]
        try:
            script = render_at(load_spec(dump(spec, root / "job.yaml")), system, timestamp="T")
        except (SpecError, RenderError) as exc:
            assert "setup" in str(exc), str(exc)
            continue
        except UnicodeError:
            continue
        assert value in script.splitlines(), value
        assert not re.search("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]", value), value


@pytest.mark.parametrize("system, directive", [
    ("slurm", "--output=/tmp/elsewhere"), ("slurm", "-o /tmp/x"), ("slurm", "--out=/tmp/x"), ("slurm", "-Jother"),
    ("slurm", "--job-name=x"), ("slurm", "--wrap=hostname"), ("slurm", "--parsable"),
    ("sge", "-o /tmp/x"), ("sge", "-S /bin/sh"), ("sge", "-C #!"), ("sge", "-b y"), ("sge", "-N other"),
    ("sge", "-shell n"), ("sge", "-j n"),
])  # fmt: skip
def test_directives_cannot_replace_what_hpcdist_sets(tmp_path: Path, system: str, directive: str) -> None:
    make_tools(tmp_path)
    (tmp_path / "driver.py").write_text("")
    spec = base_spec(system, tmp_path / "run")
    spec["resources"]["directives"] = [directive]
    with pytest.raises((SpecError, RenderError), match="directives"):
        render_at(load_spec(dump(spec, tmp_path / "job.yaml")), system, timestamp="T")


@pytest.mark.parametrize("system, directive", [("slurm", "--constraint=haswell"), ("slurm", "--exclusive"),
                                               ("slurm", "--hold"), ("slurm", "--comment=a%j"),
                                               ("sge", "-l gpu=1"), ("sge", "-notify"), ("sge", "-P proj")])
def test_ordinary_directives_are_kept(tmp_path: Path, system: str, directive: str) -> None:
    make_tools(tmp_path)
    (tmp_path / "driver.py").write_text("")
    spec = base_spec(system, tmp_path / "run")
    spec["resources"]["directives"] = [directive]
    script = render_at(load_spec(dump(spec, tmp_path / "job.yaml")), system, timestamp="T")
    assert ("#SBATCH " if system == "slurm" else "#$ ") + directive in script.splitlines()
