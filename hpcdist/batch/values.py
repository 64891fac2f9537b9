"""The last check before a value is written into a job script (pure; raises RenderError).

The spec validates every key; this module checks again, at the point of rendering, what no
quoting can make safe: control characters and line separators (Grid Engine's qsub reads
``#$`` lines anywhere in the script, even inside a quoted string, so a newline in any value
could add a directive), text that is not valid UTF-8, words that a command would take for an
option, values longer than the kernel passes to a program, and characters that sbatch or
qsub would interpret inside a directive line (which no shell quoting reaches).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from hpcdist.errors import RenderError

if TYPE_CHECKING:
    from hpcdist.spec.model import JobSpec

# C0 controls but tab, DEL, C1 controls, and the Unicode line and paragraph separators
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
#: Linux passes no single argument or NAME=value longer than this to a program (MAX_ARG_STRLEN - 1)
MAX_ARG_BYTES = 32 * 4096 - 1
#: environment variables the job script's own bash (or any bash it starts) interprets
SHELL_CONTROL_VARS = frozenset({
    "BASH_ENV", "ENV", "IFS", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND", "GLOBIGNORE",
    "BASH_XTRACEFD", "POSIXLY_CORRECT", "BASH_COMPAT",
})  # fmt: skip
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# a word in a directive line: sbatch and qsub split on blanks and treat quotes, '#', '\\'
# and (qsub) '$' themselves, so none of them may appear
_DIRECTIVE_WORD = re.compile(r"[A-Za-z0-9_.,:=/@+%\[\]-]+")


def describe(value: str) -> str:
    """``value`` shortened for a one-line message."""
    return repr(value if len(value) <= 60 else value[:57] + "...")


def check_text(spec: JobSpec, key: str, value: str) -> str:
    """``value`` unchanged when a shell-quoted copy of it reaches the job byte for byte.

    Raises:
        RenderError: naming the spec and ``key`` for control characters (newline, CR, NUL,
            escape, U+2028 ...), text that is not UTF-8, or a value the kernel would not pass
            to a program.
    """
    m = _CONTROL.search(value)
    if m:
        raise RenderError(
            f"{spec.source}: {key}: {describe(value)} contains the control character "
            f"U+{ord(m.group(0)):04X} at position {m.start()}; a job script value must be one line of text"
        )
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise RenderError(f"{spec.source}: {key}: {describe(value)} is not valid text ({exc.reason})") from None
    if size > MAX_ARG_BYTES:
        raise RenderError(
            f"{spec.source}: {key}: {size} bytes long; Linux passes at most {MAX_ARG_BYTES} bytes "
            "in one argument or variable"
        )
    return value


def check_word(spec: JobSpec, key: str, value: str) -> str:
    """Like :func:`check_text`, and refused when it starts with ``-`` (a command would read an option)."""
    check_text(spec, key, value)
    if value.startswith("-"):
        raise RenderError(f"{spec.source}: {key}: {describe(value)} starts with '-', which a command reads as "
                          "an option")
    return value


def check_directive(spec: JobSpec, key: str, value: str, reserved: tuple[str, ...] = (),
                    attached: bool = False) -> str:
    """One extra directive (``--constraint=haswell``, ``-l mem=4G``), safe for the directive parser.

    ``reserved`` are the options that would undo what hpcdist relies on (where the output
    goes, which shell reads the script, which lines are directives); with ``attached``, a
    short option glued to its value (``-Jname``) counts as that option.

    Raises:
        RenderError: for quotes, blanks inside a value, ``#``, ``\\``, ``$``, a word that is not
            an option, or an option hpcdist sets itself.
    """
    check_text(spec, key, value)
    words = value.split(" ")
    if not value.startswith("-") or len(words) > 2 or not all(_DIRECTIVE_WORD.fullmatch(w) for w in words):
        raise RenderError(
            f"{spec.source}: {key}: {describe(value)} cannot be written into a batch directive line: expected one "
            "option such as --constraint=haswell or -l mem=4G (letters, digits, _ . , : = / @ + % [ ] -), "
            "no quotes, blanks inside the value, '#', '\\' or '$'"
        )
    option = words[0].split("=", 1)[0]
    # sbatch takes any unambiguous prefix of a long option (--out for --output)
    if option in reserved or (option.startswith("--") and len(option) > 3 and any(
            r.startswith(option) for r in reserved if r.startswith("--"))) or (
            attached and not option.startswith("--") and option[:2] in reserved):  # -Jname
        raise RenderError(f"{spec.source}: {key}: {option} is set by hpcdist itself and cannot be overridden")
    return value


def check_env_name(spec: JobSpec, name: str) -> str:
    """An ``environment.vars`` name: a shell identifier that does not steer the job's shell."""
    if not ENV_NAME.fullmatch(name):
        raise RenderError(f"{spec.source}: environment.vars: {describe(name)} is not a variable name "
                          "(letters, digits and _, not first a digit)")
    if name in SHELL_CONTROL_VARS or name.startswith("BASH_FUNC_"):
        raise RenderError(f"{spec.source}: environment.vars.{name}: this variable changes how the job's bash "
                          "reads the script; set it in environment.setup if you really mean it")
    return name


def check_spec(spec: JobSpec, run_dir: Path, reserved: tuple[str, ...] = (), attached: bool = False) -> None:
    """Every string of ``spec`` that reaches the job script, checked (see the module docstring).

    ``reserved`` and ``attached``: the batch system's own directive options (see
    :func:`check_directive`).

    Raises:
        RenderError: for the first value that cannot reach the job safely, naming its key.
    """
    r, env, prog = spec.resources, spec.environment, spec.program
    check_word(spec, "name", spec.name)
    for key, value in (("resources.queue", r.queue), ("resources.account", r.account),
                       ("resources.parallel_environment", r.parallel_environment),
                       ("resources.memory_resource", r.memory_resource)):
        if value is not None and value != "":
            check_word(spec, key, str(value))
            if not _DIRECTIVE_WORD.fullmatch(str(value)):
                raise RenderError(f"{spec.source}: {key}: {describe(str(value))} cannot be written into a batch "
                                  "directive line (letters, digits, _ . , : = / @ + % [ ] -)")
    for i, value in enumerate(r.directives):
        check_directive(spec, f"resources.directives[{i}]", value, reserved, attached)
    for i, value in enumerate(env.modules):
        check_word(spec, f"environment.modules[{i}]", value)
    for i, value in enumerate(env.setup):
        check_text(spec, f"environment.setup[{i}]", value)
    for name, value in env.vars.items():
        check_env_name(spec, name)
        check_text(spec, f"environment.vars.{name}", str(value))
        if len(f"{name}={value}".encode()) > MAX_ARG_BYTES:
            raise RenderError(f"{spec.source}: environment.vars.{name}: NAME=value is longer than the "
                              f"{MAX_ARG_BYTES} bytes Linux passes in one variable")
    check_text(spec, "environment.workdir", str(env.workdir))
    check_word(spec, "environment.python", str(env.python))
    check_text(spec, "spec file", str(spec.path))
    check_text(spec, "output (run directory)", str(run_dir))
    for key, path in (("output (run directory)", run_dir), ("environment.workdir", env.workdir)):
        _check_path_length(spec, key, Path(path))
    if prog.script is not None:
        check_text(spec, "program.script", str(prog.script))
        for i, value in enumerate(prog.args):
            check_text(spec, f"program.script (argument {i + 1})", value)
    for i, value in enumerate(spec.launcher_args):
        check_text(spec, f"launcher_args[{i}]", value)
    _check_total(spec, [*env.vars.items()], [*prog.args, *spec.launcher_args])


#: the longest file name (one path component) and path Linux accepts
NAME_MAX, PATH_MAX = 255, 4095


def _check_path_length(spec: JobSpec, key: str, path: Path) -> None:
    longest = max((len(p.encode("utf-8", "surrogateescape")) for p in path.parts), default=0)
    if longest > NAME_MAX or len(str(path).encode("utf-8", "surrogateescape")) > PATH_MAX:
        raise RenderError(f"{spec.source}: {key}: {describe(str(path))} is too long for a path (at most "
                          f"{NAME_MAX} bytes per name and {PATH_MAX} in all)")


def _check_total(spec: JobSpec, variables: Iterable[tuple[str, object]], args: list[str]) -> None:
    # execve refuses an environment plus arguments larger than a quarter of the 8 MiB stack
    # (ARG_MAX 2 MiB); keep a margin for what the batch system and the site add
    total = sum(len(f"{k}={v}".encode()) + 1 for k, v in variables) + sum(len(a.encode()) + 1 for a in args)
    limit = 1 << 20
    if total > limit:
        raise RenderError(f"{spec.source}: environment.vars and the program's arguments add up to {total} bytes; "
                          f"at most {limit} fit beside the batch system's own environment")
