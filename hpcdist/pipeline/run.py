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

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import click

from hpcdist.errors import HpcdistError, SpecError
from hpcdist.pipeline import status
from hpcdist.pipeline.rundir import LOGS, MANIFEST, OBJECTS, TRACEBACKS, atomic_write, ensure_layout
from hpcdist.pipeline.lock import LAUNCHER, WORLD, RunLock, check_free
from hpcdist.pipeline.runner import traceback_file

__all__ = ["is_spec", "run_spec", "parse_trailing"]

SPEC_FILE = "spec.yaml"
PID_FILE = "rank-0.pid"
#: lines of a failed task's traceback printed on the console (the end, where it raised)
TRACEBACK_LINES = 6


def is_spec(path: str) -> bool:
    """Whether ``hpcdist run``'s argument is a job spec (``.yaml``/``.yml``) rather than a script."""
    return path.lower().endswith((".yaml", ".yml"))


@click.command(context_settings={"ignore_unknown_options": False})
@click.option("-n", "--ranks", "nranks", type=int, default=None)
@click.option("--backend", default=None)
@click.option("--workers", type=int, default=None)
@click.option("--timeout", type=float, default=None)
@click.option("--set", "overrides", multiple=True)
@click.option("--resume", type=click.Path(file_okay=False), default=None)
@click.option("--run-dir", "run_dir", type=click.Path(file_okay=False), default=None)
def _trailing(**kw: Any) -> dict[str, Any]:
    return kw


def parse_trailing(args: Sequence[str]) -> dict[str, Any]:
    """The options written after SPEC (``hpcdist run SPEC -n 4 --set k=v``)."""
    try:
        ctx = _trailing.make_context("hpcdist run SPEC", list(args))
    except click.UsageError as exc:
        raise HpcdistError(f"hpcdist run SPEC: {exc.format_message()}") from None
    return dict(ctx.params)


def run_spec(spec_path: str, *, nranks: int | None = None, backend: str | None = None, workers: int | None = None,
             timeout: float | None = None, overrides: Sequence[str] = (), resume: str | None = None,
             run_dir: str | None = None) -> int:
    """Run the pipeline of ``spec_path``; returns the exit status (:mod:`hpcdist.pipeline.status`)."""
    from hpcdist.transports.mpienv import in_mpi_world

    if in_mpi_world():
        return _in_world(spec_path, overrides, run_dir or resume or os.environ.get("HPCDIST_RUN_DIR"))
    from hpcdist.backends import canonical_name
    from hpcdist.launcher import check_timeout, split_run_options

    check_timeout(timeout)

    spec = _load(spec_path, overrides)
    if nranks is None and workers is None and (backend is None or canonical_name(backend, "--backend") == "mpi"):
        nranks = spec.resources.ranks  # the spec's world size unless -n/--workers say otherwise
    name, nranks_, workers = split_run_options(backend, nranks, workers)
    if spec.program.parsed is None:  # a spec whose program is a script: run that script
        return _run_script_spec(spec, name, nranks_, workers, timeout, resume or run_dir)
    directory = _choose_run_dir(spec, resume or run_dir, must_exist=resume is not None)
    ensure_layout(directory)
    lock = RunLock.take(directory, LAUNCHER)
    try:
        if name == "mpi":
            check_free(directory, WORLD)  # a batch job, or a world still wrapping up, works here
        _write_spec(spec, directory)
        click.echo(f"hpcdist: run directory: {directory}")
        if name == "mpi":
            return _launch_mpi(spec, directory, nranks_, timeout)
        world_lock = RunLock.take(directory, WORLD)
        try:
            return _in_process(spec, directory, name, workers, timeout)
        finally:
            world_lock.release()
    finally:
        lock.release()


# ---- helpers ----------------------------------------------------------------------------------


def _load(spec_path: str, overrides: Sequence[str]) -> Any:
    from hpcdist.spec.model import load_spec

    return load_spec(spec_path, overrides)


def _run_script_spec(spec: Any, backend: str, nranks: int, workers: int | None, timeout: float | None,
                     resume: str | None) -> int:
    from hpcdist.launcher import run_local, run_script

    if resume:
        raise HpcdistError(f"--resume: {spec.source} runs a script, not a pipeline; there is nothing to resume")
    script, args = str(spec.program.script), spec.program.args
    os.chdir(spec.environment.workdir)
    if backend != "mpi":
        return run_local(script, args, backend, workers, timeout=timeout)
    return run_script(script, args, nranks, timeout=timeout)


def _choose_run_dir(spec: Any, given: str | None, must_exist: bool) -> Path:
    if given:
        directory = Path(os.path.abspath(given))
        if must_exist and not ((directory / MANIFEST).exists() or (directory / OBJECTS).is_dir()):
            raise HpcdistError(f"--resume {given}: not a pipeline run directory (no {MANIFEST} or {OBJECTS}/)")
        return directory
    stamp = time.strftime("%Y%m%d-%H%M%S")
    directory, n = spec.run_dir(stamp), 1
    while directory.exists():
        n += 1
        directory = spec.run_dir(f"{stamp}-{n}")
    return directory


def _write_spec(spec: Any, directory: Path) -> None:
    from hpcdist.spec.dump import spec_to_yaml

    text = spec_to_yaml(spec).replace("by hpcdist submit", "by hpcdist run", 1)
    atomic_write(directory / SPEC_FILE, text.encode())


def _execute(client: Any, spec: Any, directory: Path, stop: threading.Event) -> int:
    from hpcdist.pipeline.progress import Progress
    from hpcdist.pipeline.runner import Deadline, Runner
    from hpcdist.runtime.world import walltime_warning

    log_path = directory / LOGS / "rank-0.log"
    log_fh = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed below

    def log(line: str) -> None:
        log_fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
        log_fh.flush()

    progress = Progress()
    try:
        runner = Runner(client, spec.program.parsed, directory, deadline=Deadline.from_environment(
            spec.resources.walltime), walltime_event=walltime_warning, stop_event=stop, progress=progress, log=log,
            cancelled=lambda: _cancel_requested(directory))
        result = runner.run()
        progress.close(result.counts, 0, time.time() - runner.started)
    finally:
        log_fh.close()
    tasks = result.manifest.get("tasks", {})
    failed = [(tid, t["error"], t.get("traceback")) for tid, t in tasks.items() if t["status"] == "failed"]
    for tid, error, trace in failed[:10]:
        sys.stderr.write(f"hpcdist: task {tid} failed: {error}\n")
        if trace:
            sys.stderr.write(_traceback_excerpt(trace, directory / TRACEBACKS / traceback_file(tid)))
    if len(failed) > 10:
        sys.stderr.write(f"hpcdist: ... and {len(failed) - 10} more failed tasks (see {directory / MANIFEST})\n")
    for text in result.errors:
        sys.stderr.write(f"hpcdist: error: {text}\n")
    name, meaning = status.EXIT_STATUSES[result.code]
    sys.stderr.write(f"hpcdist: pipeline {name}: {meaning}\n")
    if result.code == status.OK:
        click.echo(f"hpcdist: output_hash {result.output_hash}")
    return result.code


def _cancel_requested(directory: Path) -> bool:
    """Whether ``hpcdist cancel`` noted a cancel of this run's job (``job.json``) for this job."""
    import json

    try:
        record = json.loads((directory / "job.json").read_text(encoding="utf-8"))
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
    from hpcdist.launcher import stopping_on_signals

    stop = threading.Event()
    with stopping_on_signals(stop, KEPT):  # before the world starts: a cancel meanwhile still ends in order
        return _rank0(spec_path, overrides, run_dir, stop)


def _rank0(spec_path: str, overrides: Sequence[str], run_dir: str | None, stop: threading.Event) -> int:
    from hpcdist.runtime.client import Client

    client = Client(backend="mpi")  # ranks other than 0 serve as workers and exit inside
    code = status.INTERNAL
    try:
        if not run_dir:
            raise HpcdistError("inside an MPI world, hpcdist run SPEC needs --run-dir (or HPCDIST_RUN_DIR)")
        directory = Path(os.path.abspath(run_dir))
        ensure_layout(directory)
        held = RunLock.take(directory, WORLD)  # noqa: F841 - held until this process ends
        (directory / LOGS / PID_FILE).write_text(f"{os.getpid()}\n")
        if (directory / SPEC_FILE).is_file():  # the resolved spec written at submission wins
            spec_path = str(directory / SPEC_FILE)
        spec = _load(spec_path, overrides)
        if spec.program.parsed is None:
            raise SpecError(f"{spec_path}: program: inside an MPI world hpcdist run SPEC runs pipelines only")
        os.chdir(spec.environment.workdir)
        code = _execute(client, spec, directory, stop)
    except HpcdistError as exc:
        sys.stderr.write(f"hpcdist: error: {exc}\n")
        code = exc.exit_code if isinstance(exc, SpecError) else status.INTERNAL
    except BaseException:  # noqa: BLE001 - report once, then end every rank cleanly
        import traceback

        traceback.print_exc()
        code = status.INTERNAL
    finally:
        client._shutdown(0)
    return code


def _in_process(spec: Any, directory: Path, backend: str, workers: int | None, timeout: float | None) -> int:
    from hpcdist.runtime.client import Client
    from hpcdist.launcher import TIMED_OUT, TimeLimit, stopping_on_signals
    from hpcdist.runtime.world import install_signal_handlers

    os.chdir(spec.environment.workdir)
    stop = threading.Event()
    install_signal_handlers(0)  # SIGUSR1: the walltime warning, as on rank 0 of an MPI world
    limit = TimeLimit(timeout, signal.SIGTERM)  # SIGTERM: stops the run as a cancel does
    with stopping_on_signals(stop, KEPT):
        try:
            with Client(backend=backend, workers=workers) as client:
                code = _execute(client, spec, directory, stop)
        finally:
            limit.cancel()
    return TIMED_OUT if limit.fired else code


def _launch_mpi(spec: Any, directory: Path, nranks: int, timeout: float | None) -> int:
    from hpcdist.launcher import (
        launch_env, local_mpiexec, postmortem, start_launcher, stopping_on_signals, wait_launcher,
    )

    mpiexec = local_mpiexec(nranks)
    state_dir = directory / "ranks"
    state_dir.mkdir(exist_ok=True)
    pid_file = directory / LOGS / PID_FILE
    try:
        pid_file.unlink()
    except FileNotFoundError:
        pass
    env = launch_env(timeout, HPCDIST_STATE_DIR=str(state_dir), HPCDIST_RUN_DIR=str(directory))
    argv = [mpiexec, "-n", str(nranks), sys.executable, "-m", "hpcdist", "run", str(directory / SPEC_FILE),
            "--run-dir", str(directory)]

    def forward_warning(signum: int, frame: Any) -> None:
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGUSR1)
        except (OSError, ValueError):
            sys.stderr.write("hpcdist: walltime warning arrived before rank 0 started; ignored\n")

    # handlers first: a Ctrl-C while the world starts must not orphan it
    stop = threading.Event()
    with stopping_on_signals(stop, KEPT):
        signal.signal(signal.SIGUSR1, forward_warning)
        proc = start_launcher(argv, env, cwd=spec.environment.workdir)
        code, how = wait_launcher(proc, stop, timeout)
    if code not in status.EXIT_STATUSES and how == "":
        for line in postmortem(str(state_dir)):
            sys.stderr.write(f"hpcdist: {line}\n")
    return code


def task_names(state_dir: str) -> dict[str, str]:
    """Cache key -> pipeline task name (``squares[3]``), from the manifest beside a run's ``ranks/``."""
    import json

    try:
        text = (Path(state_dir).parent / MANIFEST).read_text(encoding="utf-8")
        tasks = json.loads(text).get("tasks", {})
        return {t["key"]: tid for tid, t in tasks.items() if isinstance(t, dict) and t.get("key")}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}
