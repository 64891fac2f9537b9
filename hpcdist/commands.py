"""The one seam through which hpcdist runs external commands (and finds mpiexec)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Mapping, Sequence

from hpcdist.errors import CommandError


@dataclass(frozen=True)
class CommandResult:
    """What an external command returned."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def tail(self, lines: int = 5) -> str:
        """The last ``lines`` lines of stderr (else stdout) joined by `` / ``, for one-line messages."""
        text = self.stderr.strip() or self.stdout.strip() or "no output"
        return " / ".join(text.splitlines()[-lines:])


def run_command(
    argv: Sequence[str],
    timeout: float = 60.0,
    *,
    check: bool = True,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Run ``argv`` (no shell) and capture its output.

    This is the only place hpcdist starts a batch-system command, so tests can replace it.

    Args:
        argv: the command and its arguments.
        timeout: seconds before the command is killed and :class:`CommandError` raised.
        check: raise :class:`CommandError` (with the command's own stderr) on a non-zero exit.
        input: text sent to the command's standard input.
        env: the environment (default: this process's).

    Returns:
        The exit status and the decoded standard output and error.
    """
    argv = tuple(str(a) for a in argv)
    try:
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise CommandError(f"{argv[0]}: command not found (is it installed and on PATH?)") from None
    except OSError as exc:  # not executable, a directory, ...
        raise CommandError(f"{argv[0]}: cannot run it: {exc.strerror or exc}") from None
    except subprocess.TimeoutExpired:
        raise CommandError(f"{' '.join(argv)}: no answer within {timeout:g} s") from None
    result = CommandResult(argv, proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise CommandError(f"{argv[0]} failed (exit {proc.returncode}): {result.tail()}")
    return result


def find_mpiexec() -> str | None:
    """The ``mpiexec`` to use locally: the one installed beside this Python first
    (the ``mpich`` extra's), else the first on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.access(here, os.X_OK):
        return here
    return shutil.which("mpiexec")
