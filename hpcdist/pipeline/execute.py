"""What runs on a worker for one pipeline task: call the function, store the result, log.

The worker itself writes the result into the run directory (a shared file system on a
cluster), so a result is persisted the moment it exists and rank 0 never has to fetch it.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcdist.errors import TaskInterrupted, TaskTimeout
from hpcdist.pipeline.imports import resolve_callable
from hpcdist.paths import RunDir
from hpcdist.pipeline.rundir import load_object, save_object
from hpcdist.runtime.running import current_rank

__all__ = ["Element", "run_task", "load_stored"]


@dataclass(frozen=True)
class Element:
    """Stands for ``source[index]``: element ``index`` of another task's list output."""

    source: Any
    index: int


def _resolve(value: Any) -> Any:
    if isinstance(value, Element):
        return value.source[value.index]
    return value


def _log(run_dir: Path, line: str) -> None:
    path = RunDir(run_dir).logs / f"worker-{socket.gethostname()}-{os.getpid()}.log"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {line}\n")
    except OSError:
        pass


def _interruptible(tid: str) -> dict[int, Any]:
    """While the task runs, SIGTERM/SIGINT end it with :class:`TaskInterrupted` (after the
    worker's own handler, which waits for rank 0's shutdown); returns the handlers to restore.

    A task held in C code sees this only when the call returns (``sleep``/``pause`` return
    on a signal; a long numpy call does not): the shutdown's grace ends such a worker.
    """
    saved: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous) or previous is signal.default_int_handler:
            continue  # the default action (or ignored): nothing here survives the signal to stop in order

        def on_stop(signum: int, frame: Any, previous: Any = previous) -> None:
            previous(signum, frame)
            raise TaskInterrupted(f"task {tid} stopped by {signal.Signals(signum).name}")

        saved[sig] = previous
        signal.signal(sig, on_stop)
    return saved


def load_stored(path: str) -> Any:
    """A stored result (a cached task's output needed by a task that runs now)."""
    return load_object(path)


def run_task(module: str, attr: str, args: tuple, kwargs: dict, info: dict[str, Any]) -> Any:
    """Run one concrete pipeline task and persist its result.

    Args:
        module, attr: the callable (imported here, with ``info["import_dirs"]`` on sys.path).
        args, kwargs: the arguments, references already replaced by values; an
            :class:`Element` as first argument is resolved to the mapped item.
        info: ``run_dir``, ``key``, ``tid``, ``timeout`` (seconds or None), ``import_dirs``.

    Returns:
        The function's result (kept on this worker for the tasks that need it).

    Raises:
        TaskTimeout: the call took longer than the timeout (enforced with SIGALRM where the
            task runs on the main thread; rank 0 enforces it in every case).
    """
    run_dir = Path(info["run_dir"])
    fn = resolve_callable(module, attr, info.get("import_dirs", ()))
    args = tuple(_resolve(a) for a in args)
    timeout = info.get("timeout")
    start = time.time()
    _log(run_dir, f"start {info['tid']} key={info['key']}")
    main = threading.current_thread() is threading.main_thread()
    use_alarm = bool(timeout) and main
    if use_alarm:
        def on_alarm(signum: int, frame: Any) -> None:
            raise TaskTimeout(f"task {info['tid']} exceeded its timeout of {timeout:g} s")

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, float(timeout))
    stops = _interruptible(info["tid"]) if main else {}
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:

        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        _log(run_dir, f"failed {info['tid']}: {type(exc).__name__}: {exc}\n" + "".join(
            f"    {line}\n" for line in text.rstrip("\n").splitlines()).rstrip("\n"))
        raise
    finally:
        for sig, handler in stops.items():
            signal.signal(sig, handler)
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    end = time.time()
    extra = {"tid": info["tid"], "start": start, "end": end, "host": socket.gethostname(), "pid": os.getpid(),
             "rank": current_rank()}
    meta = save_object(RunDir(run_dir).objects, info["key"], result, extra)
    _log(run_dir, f"done {info['tid']} in {end - start:.3f} s, {meta['bytes']} bytes")
    return result
