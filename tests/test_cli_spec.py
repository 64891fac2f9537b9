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


# -- issue 10: every SpecError is one line per problem, non-zero exit, never a traceback ----------

HOSTILE_SPECS = {
    "newline in name": ('name: "a\\nb; touch PWNED"\n', "name: ", "control character U+000A"),
    "ESC in a module": ('environment: {modules: ["gcc\\e[2J"]}\n', "environment.modules: ", "U+001B"),
    "line separator in queue": ('resources: {queue: "q\\Lx"}\n', "resources.queue: ", "U+2028"),
    "NUL in a variable": ('environment: {vars: {X: "a\\0b"}}\n', "environment.vars: ", "U+0000"),
    "octal ranks": ("resources: {ranks: 010}\n", "resources.ranks: ", "octal 8"),
    "sexagesimal ranks": ("resources: {ranks: 1:00}\n", "resources.ranks: ", "base 60"),
    "absurd ranks": ("resources: {ranks: 99999999999999999999}\n", "resources.ranks: ", "limit 2147483647"),
    "absurd memory": ("resources: {memory: 99999999999999999999999TiB}\n", "resources.memory: ", "limit"),
    "alias bomb": ("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"b{i}: &b{i} [" + ", ".join([f"*{'a' if i == 0 else f'b{i - 1}'}"] * 10) + "]\n" for i in range(8)),
        "", "alias bomb"),
    "recursive alias": ("a: &a [*a]\n", "", "recursive alias"),
    "deep nesting": ("a: " + "[" * 50_000 + "]" * 50_000 + "\n", "", "levels"),
    "gpus on sge": ("scheduler: sge\nresources: {ranks: 2, walltime: 10, gpus_per_node: 2}\n",
                    "resources.gpus_per_node: ", "Grid Engine"),
    "name too long": ("name: " + "a" * 300 + "\n", "name: ", "file name limit of 255 bytes"),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", list(HOSTILE_SPECS))
@pytest.mark.parametrize("command", ["validate", "render", "submit"])
def test_every_spec_error_is_one_line_per_problem(spec: Path, capsys: pytest.CaptureFixture[str], case: str,
                                                  command: str) -> None:
    extra, key, words = HOSTILE_SPECS[case]
    base = {"name": "name: pi", "scheduler": "scheduler: slurm", "program": "program: {script: pi.py}",
            "resources": 'resources: {ranks: 4, walltime: "00:10:00"}'}
    given = {line.split(":", 1)[0] for line in extra.splitlines() if line[:1].isalpha()}
    spec.write_text("\n".join(v for k, v in base.items() if k not in given) + "\n" + extra)
    argv = [command, str(spec)] + (["--scheduler", "slurm"] if command == "render" and "sge" not in extra else [])
    argv += ["--dry-run"] if command == "submit" else []
    code, out, err = run(argv, capsys)
    assert code == 2 and out == "", (code, out, err)
    lines = err.splitlines()
    assert lines[0].startswith(f"hpcdist: error: invalid job spec {spec} (")
    assert all(line.isprintable() and line.startswith(f"{spec}:") for line in lines[1:]), lines
    assert any(f": {key}" in line and words in line for line in lines[1:]), lines
    assert not (spec.parent / "runs").exists()


@pytest.mark.parametrize("data, words", [
    (b"name: \xff\n", "byte offset 6: byte 0xff is not valid UTF-8"),
    (b"\xff\xfen\x00a\x00", "UTF-16"),
    (b"name: a\x00\n", "NUL byte"),
    (b"", "the spec is empty"),
])
def test_unreadable_spec_files_are_one_line(spec: Path, capsys: pytest.CaptureFixture[str], data: bytes,
                                            words: str) -> None:
    spec.write_bytes(data)
    code, out, err = run(["validate", str(spec)], capsys)
    assert code == 2 and out == "" and words in err and "Traceback" not in err
    assert all(line.isprintable() for line in err.splitlines())


def test_a_directory_is_one_line(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["validate", str(spec.parent)], capsys)
    assert code == 2 and err == f"hpcdist: error: {spec.parent}: is a directory, not a spec file\n"


def test_numeric_queue_and_account_names_validate(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["validate", str(spec), "--set", "resources.queue=123", "--set", "resources.account=0042"],
                       capsys)
    assert code == 0, out
    code, out, _ = run(["render", str(spec), "--scheduler", "slurm", "--set", "resources.queue=0042",
                        "--set", "resources.account=12345"], capsys)
    assert code == 0 and "#SBATCH --partition=0042\n" in out and "#SBATCH --account=12345\n" in out


def test_only_the_cli_package_imports_click() -> None:
    import re

    package = REPO / "hpcdist"
    users = [str(p.relative_to(package)) for p in package.rglob("*.py")
             if re.search(r"^\s*(import click|from click)", p.read_text(encoding="utf-8"), re.M)]
    assert users and all(u.startswith("cli/") for u in users), users


def test_an_option_shared_by_commands_is_one_declaration() -> None:
    from hpcdist.cli import cli

    seen: dict[str, tuple[object, ...]] = {}
    for command in cli.commands.values():
        for param in command.params:
            # bench's --json names a file; doctor's and status's are a flag (a different option)
            if not param.opts[-1].startswith("--") or (command.name == "bench" and param.name == "json_path"):
                continue
            what = (tuple(param.opts), type(param.type), param.type.name, getattr(param, "help", None), param.default)
            assert seen.setdefault(param.opts[-1], what) == what, (command.name, param.opts)
