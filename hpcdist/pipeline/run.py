"""``hpcdist run SPEC``: run a spec's pipeline locally, on any backend, or inside an MPI world.

Three ways in:

* backend ``mpi`` (the default), outside a world: validate the spec, make the run directory,
  start ``mpiexec -n N python -m hpcdist run RUN_DIR/spec.yaml --run-dir RUN_DIR`` and
  forward Ctrl-C/SIGTERM to rank 0, which stops the world cleanly;
* inside an MPI world (under ``mpiexec``/``srun``, as in the rendered job scripts): rank 0
  runs the pipeline, every other rank is a worker;
* ``--backend thread|process|local``: everything in this process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Iterator, Sequence

from hpcdist.backends import canonical_name
from hpcdist.spec.dump import spec_to_yaml
from hpcdist.errors import HpcdistError, SpecError
from hpcdist.exitcodes import PIPELINE, ExitCode, write_status
from hpcdist.launcher import (
    TimeLimit, check_timeout, launch_env, local_launch, run_local, run_script, split_run_options, start_launcher,
    stopping_on_signals, wait_launcher,
)
from hpcdist.paths import RunDir, atomic_write, warning_file
from hpcdist.pipeline.lock import LAUNCHER, WORLD, RunLock, check_free
from hpcdist.pipeline.progress import Progress
from hpcdist.pipeline.manifest import traceback_file
from hpcdist.pipeline.runner import Deadline, Runner
from hpcdist.postmortem import postmortem
from hpcdist.runtime.client import Client
from hpcdist.runtime.world import install_signal_handlers, walltime_warning
from hpcdist.spec.model import load_spec

__all__ = ["run_spec"]

#: lines of a failed task's traceback printed on the console (the end, where it raised)
TRACEBACK_LINES = 6
#: the logger of a pipeline run: rank 0's log, ``RUN_DIR/logs/rank-0.log``
log = logging.getLogger("hpcdist.pipeline")


def run_spec(spec_path: str, *, nranks: int | None = None, backend: str | None = None, workers: int | None = None,
             timeout: float | None = None, overrides: Sequence[str] = (), resume: str | None = None,
             run_dir: str | None = None) -> int:
    """Run the pipeline of ``spec_path``; returns the exit status (:class:`~hpcdist.exitcodes.ExitCode`)."""
    from hpcdist.transports.mpienv import in_mpi_world

    if in_mpi_world():
        return _in_world(spec_path, overrides, run_dir or resume or os.environ.get("HPCDIST_RUN_DIR"))
    check_timeout(timeout)

    spec = load_spec(spec_path, overrides)
    if nranks is None and workers is None and (backend is None or canonical_name(backend, "--backend") == "mpi"):
        nranks = spec.resources.ranks  # the spec's world size unless -n/--workers say otherwise
    name, nranks_, workers = split_run_options(backend, nranks, workers)
    # the world started here or launched from here (its environment) takes the spec's allowed_failures
    with _exported(HPCDIST_ALLOWED_FAILURES=str(spec.allowed_failures)):
        return _run_loaded(spec, name, nranks_, workers, timeout, resume, run_dir)


def _run_loaded(spec: Any, name: str, nranks_: int, workers: int | None, timeout: float | None,
                resume: str | None, run_dir: str | None) -> int:
    if spec.program.parsed is None:  # a spec whose program is a script: run that script
        return _run_script_spec(spec, name, nranks_, workers, timeout, resume or run_dir)
    directory = _choose_run_dir(spec, resume or run_dir, must_exist=resume is not None)
    directory.ensure_layout()
    lock = RunLock.take(directory.root, LAUNCHER)
    try:
        if name == "mpi":
            check_free(directory.root, WORLD)  # a batch job, or a world still wrapping up, works here
        _write_spec(spec, directory)
        print(f"hpcdist: run directory: {directory.root}", flush=True)
        if name == "mpi":
            return _launch_mpi(spec, directory, nranks_, timeout)
        world_lock = RunLock.take(directory.root, WORLD)
        try:
            return _in_process(spec, directory, name, workers, timeout)
        finally:
            world_lock.release()
    finally:
        lock.release()


# ---- helpers ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _exported(**values: str) -> Iterator[None]:
    """``os.environ[name] = value`` for each of ``values`` while the block runs (then as it was)."""
    old = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def trace_env(spec: Any, directory: RunDir) -> dict[str, str]:
    """What tells the world's ranks to record their trace in ``directory`` (or, ``trace: false``, none)."""
    return {"HPCDIST_TRACE_DIR": str(directory.trace)} if spec.trace else {"HPCDIST_TRACE": "off"}


def _run_script_spec(spec: Any, backend: str, nranks: int, workers: int | None, timeout: float | None,
                     resume: str | None) -> int:
    if resume:
        raise HpcdistError(f"--resume: {spec.source} runs a script, not a pipeline; there is nothing to resume")
    script, args = str(spec.program.script), spec.program.args
    os.chdir(spec.environment.workdir)
    if backend != "mpi":
        return run_local(script, args, backend, workers, timeout=timeout)
    return run_script(script, args, nranks, timeout=timeout, launcher=spec.launcher,
                      failure_timeout=spec.failure_timeout)


def _choose_run_dir(spec: Any, given: str | None, must_exist: bool) -> RunDir:
    if given:
        directory = RunDir(os.path.abspath(given))
        if must_exist and not (directory.manifest.exists() or directory.objects.is_dir()):
            raise HpcdistError(f"--resume {given}: not a pipeline run directory (no {RunDir.MANIFEST} or "
                               f"{RunDir.OBJECTS}/)")
        return directory
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = spec.run_dir(stamp), 1
    while path.exists():
        n += 1
        path = spec.run_dir(f"{stamp}-{n}")
    return RunDir(path)


def _write_spec(spec: Any, directory: RunDir) -> None:
    text = spec_to_yaml(spec).replace("by hpcdist submit", "by hpcdist run", 1)
    atomic_write(directory.spec, text.encode())


@contextlib.contextmanager
def _rank0_log(directory: RunDir) -> Iterator[None]:
    """While the block runs, :data:`log` (and only it) writes to ``RUN_DIR/logs/rank-0.log``."""
    handler = logging.FileHandler(directory.rank0_log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    level, propagate = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # the log file, not the console (nor a root handler the tasks installed)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate
        handler.close()


def _execute(client: Any, spec: Any, directory: RunDir, stop: threading.Event) -> int:
    progress = Progress()
    with _rank0_log(directory):
        runner = Runner(client, spec.program.parsed, directory.root, deadline=Deadline.from_environment(
            spec.resources.walltime), walltime_event=walltime_warning, stop_event=stop, progress=progress,
            log=log.info, cancelled=lambda: _cancel_requested(directory))
        result = runner.run()
        progress.close(result.counts, 0, time.time() - runner.started)
    tasks = result.manifest.get("tasks", {})
    failed = [(tid, t["error"], t.get("traceback")) for tid, t in tasks.items() if t["status"] == "failed"]
    for tid, error, trace in failed[:10]:
        sys.stderr.write(f"hpcdist: task {tid} failed: {error}\n")
        if trace:
            sys.stderr.write(_traceback_excerpt(trace, directory.tracebacks / traceback_file(tid)))
    if len(failed) > 10:
        sys.stderr.write(f"hpcdist: ... and {len(failed) - 10} more failed tasks (see {directory.manifest})\n")
    for text in result.errors:
        sys.stderr.write(f"hpcdist: error: {text}\n")
    code = ExitCode(result.code)
    sys.stderr.write(f"hpcdist: pipeline {code.name.lower()}: {code.meaning}\n")
    if code == ExitCode.OK:
        print(f"hpcdist: output_hash {result.output_hash}", flush=True)
    return code


def _cancel_requested(directory: RunDir) -> bool:
    """Whether ``hpcdist cancel`` noted a cancel of this run's job (``job.json``) for this job."""
    try:
        record = json.loads(directory.job.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or not record.get("cancel_requested"):
        return False
    here = os.environ.get("SLURM_JOB_ID") or os.environ.get("JOB_ID")
    if here is not None and str(record.get("job_id")) != here:
        return False
    sys.stderr.write("hpcdist: job cancelled (hpcdist cancel): stopping, finished results are kept\n")
    sys.stderr.flush()
    return True


KEPT = "stopping, finished results are kept"


def _traceback_excerpt(trace: str, path: Path) -> str:
    """The first line (where the task ran) and the last lines (where it raised) of a traceback,
    and the file that holds all of it."""
    lines = trace.rstrip("\n").splitlines()
    shown = lines if len(lines) <= TRACEBACK_LINES + 1 else [lines[0], "...", *lines[-TRACEBACK_LINES:]]
    out = "".join(f"hpcdist:   | {line}\n" for line in shown)
    return out + f"hpcdist:   full traceback ({len(lines)} lines): {path}\n"


def _in_world(spec_path: str, overrides: Sequence[str], run_dir: str | None) -> int:
    stop = threading.Event()
    with stopping_on_signals(stop, KEPT):  # before the world starts: a cancel meanwhile still ends in order
        return _rank0(spec_path, overrides, run_dir, stop)


def _rank0(spec_path: str, overrides: Sequence[str], run_dir: str | None, stop: threading.Event) -> int:
    client = Client(backend="mpi")  # ranks other than 0 serve as workers and exit inside
    code = ExitCode.INTERNAL
    try:
        if not run_dir:
            raise HpcdistError("inside an MPI world, hpcdist run SPEC needs --run-dir (or HPCDIST_RUN_DIR)")
        directory = RunDir(os.path.abspath(run_dir))
        directory.ensure_layout()
        held = RunLock.take(directory.root, WORLD)  # noqa: F841 - held until this process ends
        directory.pid.write_text(f"{os.getpid()}\n")
        if directory.spec.is_file():  # the resolved spec written at submission wins
            spec_path = str(directory.spec)
        spec = load_spec(spec_path, overrides)
        if spec.program.parsed is None:
            raise SpecError(f"{spec_path}: program: inside an MPI world hpcdist run SPEC runs pipelines only")
        os.chdir(spec.environment.workdir)
        code = _execute(client, spec, directory, stop)
    except HpcdistError as exc:
        sys.stderr.write(f"hpcdist: error: {exc}\n")
        code = exc.exit_code if isinstance(exc, SpecError) else ExitCode.INTERNAL
    except BaseException:  # noqa: BLE001 - report once, then end every rank cleanly
        traceback.print_exc()
        code = ExitCode.INTERNAL
    finally:
        write_status(code)  # the run's status, whatever the launcher says of a dead worker
        client.close()
    return code


def _in_process(spec: Any, directory: RunDir, backend: str, workers: int | None, timeout: float | None) -> int:
    os.chdir(spec.environment.workdir)
    stop = threading.Event()
    install_signal_handlers(0)  # SIGUSR1: the walltime warning, as on rank 0 of an MPI world
    limit = TimeLimit(timeout, signal.SIGTERM)  # SIGTERM: stops the run as a cancel does
    with stopping_on_signals(stop, KEPT):
        try:
            with _exported(**trace_env(spec, directory)), Client(backend=backend, workers=workers) as client:
                code = _execute(client, spec, directory, stop)
        finally:
            limit.cancel()
    return ExitCode.TIMEOUT if limit.fired else code


def _launch_mpi(spec: Any, directory: RunDir, nranks: int, timeout: float | None) -> int:
    head = local_launch(nranks, spec.launcher)
    state_dir = directory.ranks
    state_dir.mkdir(exist_ok=True)
    pid_file = directory.pid
    try:
        pid_file.unlink()
    except FileNotFoundError:
        pass
    env = launch_env(timeout, HPCDIST_STATE_DIR=str(state_dir), HPCDIST_RUN_DIR=str(directory.root),
                     HPCDIST_FAILURE_TIMEOUT=str(spec.failure_timeout), **trace_env(spec, directory))
    argv = [*head, sys.executable, "-m", "hpcdist", "run", str(directory.spec),
            "--run-dir", str(directory.root)]

    def forward_warning(signum: int, frame: Any) -> None:
        try:
            warning_file(state_dir).touch()
            os.kill(int(pid_file.read_text().strip()), signal.SIGUSR1)
        except (OSError, ValueError):
            sys.stderr.write("hpcdist: walltime warning arrived before rank 0 started; ignored\n")

    # handlers first: a Ctrl-C while the world starts must not orphan it
    stop = threading.Event()
    with stopping_on_signals(stop, KEPT):
        signal.signal(signal.SIGUSR1, forward_warning)
        proc = start_launcher(argv, env, cwd=spec.environment.workdir)
        code, how = wait_launcher(proc, stop, timeout, state_dir)
    if how == "" and (code not in PIPELINE or proc.returncode != code):  # a rank died
        for line in postmortem(state_dir):
            sys.stderr.write(f"hpcdist: {line}\n")
    return code
