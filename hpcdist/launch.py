"""Launch lines: the command in a job script that starts every rank (pure text, nothing run).

:func:`launch_line` wraps the program command in the launcher the spec asks for, in the shape
of Parsl's launchers: ``srun --mpi=pmi2 ... COMMAND`` under SLURM with ``launcher: srun``, else
``"$MPIEXEC" -n RANKS ... COMMAND`` where RANKS is the batch system's shell word for the
number of ranks granted (``"$SLURM_NTASKS"``, ``"$NSLOTS"``). The spec has already refused
srun outside SLURM.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hpcdist.spec.model import JobSpec

__all__ = ["launch_line", "find_launcher_lines", "program_command"]


def _q(value: object) -> str:
    return shlex.quote(str(value))


def program_command(spec: JobSpec) -> str:
    """``"$PYTHON" -m hpcdist exec SCRIPT ARGS...`` with every word quoted; for a pipeline
    ``"$PYTHON" -m hpcdist run SPEC --run-dir "$HPCDIST_RUN_DIR"`` (inside the world, rank 0
    runs the pipeline; the resolved spec that ``hpcdist submit`` wrote into the run directory
    takes precedence over SPEC)."""
    program = spec.program
    if program.script is None:
        return f'"$PYTHON" -m hpcdist run {_q(spec.path)} --run-dir "$HPCDIST_RUN_DIR"'
    words = [_q(program.script)] + [_q(a) for a in program.args]
    return '"$PYTHON" -m hpcdist exec ' + " ".join(words)


def launch_line(spec: JobSpec, command: str, ranks: str) -> str:
    """The line that starts ``command`` on every rank (without the trailing ``&``).

    Args:
        spec: a validated spec (its ``launcher`` and ``launcher_args``).
        command: the shell command each rank runs (see :func:`program_command`).
        ranks: the shell word for the number of ranks, used by mpiexec.
    """
    extra = "".join(" " + _q(a) for a in spec.launcher_args)
    if spec.launcher == "srun":
        # plain srun gives N worlds of size 1 when MpiDefault=none: name the PMI
        return f"srun --mpi=pmi2{extra} {command}"
    return f'"$MPIEXEC" -n {ranks}{extra} {command}'


def find_launcher_lines(spec: JobSpec) -> str:
    """Shell lines that set MPIEXEC: the mpiexec beside the interpreter first (the PyPI
    mpich wheel installs it there), else the first one on PATH; empty for srun."""
    if spec.launcher == "srun":
        return ""
    return "\n".join([
        'MPIEXEC="$(dirname "$PYTHON")/mpiexec"',
        'if [ ! -x "$MPIEXEC" ]; then',
        '  MPIEXEC=$(command -v mpiexec) || { echo "hpcdist: mpiexec not found" >&2; exit 127; }',
        "fi",
    ])  # fmt: skip
