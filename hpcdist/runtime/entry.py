"""Entry points behind ``hpcdist exec`` (inside the world) and ``hpcdist run`` (around it)."""

from __future__ import annotations

import math
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Sequence

from hpcdist.errors import HpcdistError
from hpcdist.launch import find_mpiexec


def exec_script(script: str, args: Sequence[str], backend: str | None = None, workers: int | None = None) -> int:
    """Run a driver script on rank 0 of a world; the other ranks are workers from the start.

    Returns:
        The exit status of the script (on rank 0; worker ranks exit inside).
    """
    from hpcdist.runtime.world import set_current_world, start_world

    path = Path(script)
    if not path.is_file():
        raise HpcdistError(f"{script}: no such script")
    world = start_world(backend or "mpi", workers)
    set_current_world(world)
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(path.resolve().parent))
    code = 0
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int) and exc.code is not None:
            sys.stderr.write(f"{exc.code}\n")
    except BaseException:  # noqa: BLE001 - the driver failed: print once, end every rank non-zero
        # A clean shutdown with status 1, not MPI_Abort: an abort tears mpiexec down before it
        # has forwarded this traceback (seen cut in half).
        traceback.print_exc()
        sys.stderr.flush()
        code = 1
    finally:
        set_current_world(None)
    world.shutdown(code)
    return code


def split_run_options(backend: str | None, nranks: int | None, workers: int | None) -> tuple[str, int, int | None]:
    """Check ``hpcdist run``'s ``--backend``, ``-n`` and ``--workers`` together.

    Without ``--backend`` the script runs under mpiexec (``-n`` ranks, default 4); with
    ``--backend mpi``, ``--workers W`` means ``-n W+1``.

    Returns:
        ``(canonical backend, ranks for mpiexec, workers)``.

    Raises:
        HpcdistError: unknown backend, or options that contradict each other.
    """
    from hpcdist.backends import canonical_name

    name = canonical_name(backend, "--backend") if backend is not None else "mpi"
    if backend is None:
        from hpcdist.backends.mpi import lone_copy

        problem = lone_copy()  # `srun -n 3 hpcdist run ...` would start three worlds
        if problem:
            raise HpcdistError(problem)
    if workers is not None and workers < 1:
        raise HpcdistError(f"--workers {workers}: need at least 1 worker")
    if name != "mpi":
        if nranks is not None:
            raise HpcdistError(f"-n/--ranks counts MPI ranks; the {name} backend takes --workers instead")
        return name, 0, workers
    if workers is not None:
        if nranks is not None and nranks != workers + 1:
            raise HpcdistError(f"-n {nranks} and --workers {workers} disagree: mpi needs one rank more than workers")
        nranks = workers + 1
    return name, 4 if nranks is None else nranks, workers


def run_local(script: str, args: Sequence[str], backend: str, workers: int | None,
              timeout: float | None = None) -> int:
    """Run a driver script in this process on a non-MPI backend (``hpcdist run --backend``).

    The script's ``Client()`` attaches to the world started here, as under ``hpcdist exec``.
    With ``timeout``, the process prints every thread's stack and exits after that many
    seconds (the worker processes of the process backend exit with it).

    Returns:
        The exit status of the script.
    """
    import faulthandler

    if timeout:
        faulthandler.dump_traceback_later(timeout, exit=True)
    try:
        return exec_script(script, args, backend=backend, workers=workers)
    finally:
        if timeout:
            faulthandler.cancel_dump_traceback_later()


def local_mpiexec(nranks: int) -> str:
    """The ``mpiexec`` for a local world of ``nranks``; clear errors for too few ranks or no MPI."""
    if nranks < 2:
        raise HpcdistError(f"-n {nranks}: hpcdist needs at least 2 MPI ranks: rank 0 schedules, the others work")
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise HpcdistError("no mpiexec found: install the embedded MPI with pip install 'hpcdist[mpich]', "
                           "or load your site's MPI module")
    return mpiexec


def mpiexec_env(timeout: float | None, **extra: str) -> dict[str, str]:
    """This environment plus ``extra``, and ``MPIEXEC_TIMEOUT`` for a ``timeout`` in seconds."""
    env = dict(os.environ, **extra)
    if timeout:
        # whole seconds, rounded up: int() truncated a limit under 1 s to 0
        env["MPIEXEC_TIMEOUT"] = str(max(1, math.ceil(timeout)))
    return env


def run_script(script: str, args: Sequence[str], nranks: int, timeout: float | None = None,
               mpiexec_args: Sequence[str] = ()) -> int:
    """Start ``mpiexec -n N python -m hpcdist exec script args`` and stream its output.

    When the job fails, the task each worker was running is reported (the world is gone by
    then, so the workers wrote it down as they went).

    Returns:
        mpiexec's exit status.
    """
    mpiexec = local_mpiexec(nranks)
    if not Path(script).is_file():
        raise HpcdistError(f"{script}: no such script")
    with tempfile.TemporaryDirectory(prefix="hpcdist-") as state_dir:
        env = mpiexec_env(timeout, HPCDIST_STATE_DIR=state_dir)
        argv = [mpiexec, *mpiexec_args, "-n", str(nranks), sys.executable, "-m", "hpcdist", "exec", script, *args]
        proc = subprocess.Popen(argv, env=env)
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            try:
                code = proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        if code != 0:
            for line in postmortem(state_dir):
                sys.stderr.write(f"hpcdist: {line}\n")
    return code


def postmortem(state_dir: str) -> list[str]:
    """What each worker rank was running when the world ended, from its state file."""
    lines = []
    for path in sorted(Path(state_dir).glob("rank-*.task"), key=lambda p: int(p.stem.split("-")[1])):
        text = path.read_bytes().decode(errors="replace").strip()
        if text.startswith("R "):
            rank = path.stem.split("-")[1]
            lines.append(f"rank {rank} was running task {text[2:]!r} when the job ended")
    return lines
