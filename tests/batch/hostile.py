"""Hostile values and a fake job environment, shared by the hostile-values suites (bash, sbatch, qsub).

Every value is a format string: ``{m}`` is the path of a marker file that must never appear.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

HOSTILE = [
    # command substitution, in every spelling
    "$(touch {m})", "`touch {m}`", "$(touch${{IFS}}{m})", "$( touch {m} )", "x$(touch {m})y", "$$(touch {m})",
    "$((1+1))$(touch {m})", "<(touch {m})", ">(touch {m})",
    # command separators and operators
    "; touch {m}", "a;touch {m}", "&& touch {m}", "|| touch {m}", "| touch {m}", "& touch {m}", "a & touch {m} &",
    "a > {m}", "a >> {m}", "< /dev/null", "2>{m}",
    # quotes of all kinds
    "'; touch {m}; '", '"; touch {m}; "', "'", '"', "''", '""', "it's", "\\'", '\\"', "'$(touch {m})'",
    '"$(touch {m})"', "\u2018curly\u2019 \u201cquotes\u201d", "$'\\x41'",
    # backslashes
    "\\", "\\\\", "a\\", "\\$(touch {m})", "\\n", "a\\ b",
    # variables and expansions
    "$HOME", "${{HOME}}", "$VAR", "${{IFS}}", "${{PATH:0:1}}", "$0", "$@", "$*", "$#", "$?", "$!", "${{x:-$(touch {m})}}",
    "!!", "!$", "%s%n",
    # globs, tilde, braces
    "*", "?", "[a-z]*", "~", "~root", "{{a,b}}", "{{1..3}}", "**/*",
    # options, comments, SLURM and SGE patterns
    "-", "--", "-e", "--help", "-n 99", "--wrap=touch {m}", "#", "a#b", "# comment", "%j", "%x_%A", "%%", "$JOB_ID",
    "$TASK_ID", "#SBATCH --wrap=touch {m}", "#$ -S /bin/sh",
    # blanks
    " ", "  leading", "trailing  ", "a b", "tab\there", "=", "a=b", ",", "a,b", ":", "a:b", "@", "+",
    # unicode
    "h\u00e9llo", "\u65e5\u672c\u8a9e", "\U0001f600", "\u200b", "\ufeffbom", "\u202eevil", "a\u00a0b",
    # very long
    "x" * 1000, "y" * 5000, "$(touch {m})" * 500, "z" * 200_000,
    # newline, CR, NUL and other line breaks
    "a\nb", "a\n touch {m}", "\ntouch {m}\n", "a\rtouch {m}", "a\r\nb", "a\x00b", "a\x00$(touch {m})", "a\x1b[31mred",
    "a\x0bb", "a\x0cb", "a\x85b", "a\u2028b", "a\u2029b", "a\x7fb", "\x01", "a\n#SBATCH --wrap=touch {m}",
    "a\n#$ -S /bin/sh", "\udc80",
]


def values(marker: Path) -> list[str]:
    """The hostile values with ``{m}`` filled in."""
    return [v.format(m=marker) for v in HOSTILE]


# builtins only (one process per run): the environment as NAME=value NUL-terminated entries
FAKE_MPIEXEC = """#!/bin/bash
printf '%s\\0' "$@" > "$RECORD/argv"
for n in $(compgen -e); do printf '%s=%s\\0' "$n" "${!n}"; done > "$RECORD/env"
pwd > "$RECORD/pwd"
exit 0
"""

FAKE_MODULE = """#!/bin/bash
printf '%s\\0' "$@" >> "$RECORD/module"
"""


def make_tools(root: Path, python_name: str = "python3") -> Path:
    """``root/bin`` with a fake interpreter named ``python_name`` and a recording mpiexec/srun/module."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / python_name).write_text("#!/bin/sh\nexit 0\n")
    for name, text in (("mpiexec", FAKE_MPIEXEC), ("srun", FAKE_MPIEXEC), ("module", FAKE_MODULE)):
        (bin_dir / name).write_text(text)
    for exe in bin_dir.iterdir():
        exe.chmod(0o755)
    return bin_dir


def base_spec(system: str, output: Path) -> dict:
    return {
        "name": "hostile",
        "scheduler": system,
        "resources": {"ranks": 2, "walltime": "00:05:00", "memory": "1GiB"},
        "environment": {"python": "bin/python3", "vars": {"KEEP": "1"}},
        "program": {"script": "driver.py"},
        "output": str(output),
    }


def dump(spec: dict, path: Path) -> Path:
    # YAML escapes for everything but printable ASCII: a raw NEL or U+2028 in the file would be
    # read back as a line break by any YAML parser, so a user who means one writes the escape
    path.write_text(yaml.safe_dump(spec, allow_unicode=False, width=10**9), encoding="ascii")
    return path


def run_bash(script: Path, record: Path, bin_dir: Path, env: dict[str, str], timeout: float = 30) -> str:
    """Run a rendered script with bash, the fake tools first on PATH; its stderr."""
    record.mkdir(exist_ok=True)
    full = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "RECORD": str(record), **env}
    proc = subprocess.run(["bash", str(script)], env=full, cwd=record, capture_output=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return proc.stderr.decode(errors="replace")


def recorded_argv(record: Path, name: str = "argv") -> list[str]:
    return [a.decode("utf-8", "surrogateescape") for a in (record / name).read_bytes().split(b"\0")[:-1]]


def recorded_env(record: Path) -> dict[str, str]:
    entries = (record / "env").read_bytes().decode("utf-8", "surrogateescape").split("\0")
    return dict(e.split("=", 1) for e in entries if "=" in e)


def shellcheck(scripts: list[Path]) -> str | None:
    """shellcheck's complaints about ``scripts`` (None when it passes)."""
    if not scripts:
        return None
    exe = shutil.which("shellcheck")
    assert exe, "shellcheck is not installed (apt-get install shellcheck)"
    # SC1112: a curly quote inside single quotes is a value the user asked for, not a typo
    proc = subprocess.run([exe, "-s", "bash", "-S", "warning", "-e", "SC1112", *map(str, scripts)], capture_output=True, text=True,
                          timeout=300)
    return None if proc.returncode == 0 else proc.stdout[-3000:]
