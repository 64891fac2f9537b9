"""Helper for tests that launch an MPI world: ``run_mpi(script, n)``.

Tests import it as ``from mpiutil import run_mpi`` (the tests directory must be on sys.path).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

from hpcdist.commands import find_mpiexec

MPI_DIR = Path(__file__).resolve().parent / "mpi"


def run_mpi(
    script_or_argv: str | os.PathLike | Sequence[str],
    n: int,
    timeout: float = 60,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run ``mpiexec -n n python script`` (or ``mpiexec -n n *argv``) and capture its output.

    Args:
        script_or_argv: a script path (a bare name is looked up in tests/mpi/), or the argv
            to start on every rank.
        n: number of ranks.
        timeout: seconds; passed to mpiexec as MPIEXEC_TIMEOUT and, plus a margin, to
            subprocess.run, so a hung world never outlives the test.
        env: extra environment variables.

    Returns:
        The completed process, with text stdout and stderr.
    """
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise RuntimeError("mpiexec not found: install the mpich extra (pip install 'hpcdist[mpich]')")
    if isinstance(script_or_argv, (str, os.PathLike)):
        script = Path(script_or_argv)
        if not script.exists() and (MPI_DIR / script).exists():
            script = MPI_DIR / script
        argv = [sys.executable, str(script)]
    else:
        argv = [str(a) for a in script_or_argv]
    full_env = dict(os.environ)
    full_env.setdefault("OPENBLAS_NUM_THREADS", "1")
    full_env.setdefault("OMP_NUM_THREADS", "1")
    full_env["MPIEXEC_TIMEOUT"] = str(max(1, int(timeout)))
    if env:
        full_env.update(env)
    return subprocess.run(
        [mpiexec, "-n", str(n), *argv],
        capture_output=True,
        text=True,
        timeout=timeout + 15,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )
