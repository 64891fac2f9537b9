"""A worker process that is about to end on purpose says why first: rank 0 then needs no detector.

:func:`install` (once, in a worker process only: an MPI rank other than 0, a process-backend
worker; never the driver's process, never the thread or local backends) makes these ends tell
rank 0 through :meth:`~hpcdist.transports.base.Transport.goodbye` before they happen:

* ``os._exit(code)`` called by a task (or by any code of the worker process): ``os._exit`` is
  wrapped; the reason names the code and the task running (``the task 't3' called os._exit(3)``),
  found from the executor's frame when the exit comes (nothing is recorded per task);
* SIGTERM and SIGINT where the worker would die of them (their default handlers): the reason
  names the signal, then the worker dies as before, with the same status. Where the runtime
  handles them itself (MPI workers wait for rank 0's shutdown, see
  :func:`hpcdist.runtime.world.install_signal_handlers`), that handler says goodbye when it gives up;
* a fatal error in one of hpcdist's own loops (:func:`~hpcdist.runtime.running.report_loop_failure`).

SIGKILL, SIGSEGV and the OOM killer leave no time to say anything: the failure detector (MPI) or
the closed pipe (process backend) finds those. hpcdist's own ends (the end of the world,
:func:`~hpcdist.runtime.running.end_process`) call :func:`mute` first and are not deaths. A child
process forked by a task inherits none of this (the hooks check the pid).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

__all__ = ["install", "say", "mute", "running_key", "installed"]

#: the real ``os._exit`` (the wrapper calls it)
_real_exit = os._exit
_transport: Any = None
_pid: int | None = None  # the process the hooks were installed in
_done = False  # said goodbye, or muted: nothing more is said
_lock = threading.Lock()


def install(transport: Any) -> None:
    """Make this worker process say goodbye to rank 0 over ``transport`` before it ends on purpose."""
    global _transport, _pid, _done
    _transport, _pid, _done = transport, os.getpid(), False
    os._exit = _exit
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
                signal.signal(sig, _on_signal)
    except ValueError:  # not the main thread: the defaults stay
        pass


def installed() -> bool:
    """Whether this process says goodbye (:func:`install` ran here, not in a parent)."""
    return _pid == os.getpid()


def mute() -> None:
    """hpcdist ends this process itself (the world is over): say nothing from now on."""
    global _done
    _done = True


def say(reason: str, wait_s: float = 0.2) -> bool:
    """Tell rank 0 that this worker ends now and why (once; bounded by ``wait_s``); whether it was sent.

    A no-op outside a worker process (rank 0, the driver, the thread backend), after :func:`mute`
    and after a first goodbye.
    """
    global _done
    if _done or not installed():
        return False
    with _lock:
        if _done:
            return False
        _done = True
    try:
        return bool(_transport.goodbye(reason, wait_s))
    except Exception:  # noqa: BLE001 - a last word must never stop the process from ending
        return False


def running_key() -> str | None:
    """The key of the task the executor is running (looked up in the calling thread first), or None.

    Read from the executor's frame (``Worker._run``'s ``task``) when asked: costs nothing per task.
    """
    me = threading.get_ident()
    frames = sys._current_frames()
    for tid in sorted(frames, key=lambda t: t != me):
        key = _task_in(frames[tid])
        if key is not None:
            return key
    return None


def _task_in(frame: Any) -> str | None:
    """The key of the task whose ``Worker._run`` is on the stack of ``frame``, or None."""
    while frame is not None:
        if frame.f_code.co_name == "_run" and frame.f_globals.get("__name__") == "hpcdist.runtime.worker":
            return getattr(frame.f_locals.get("task"), "key", None)
        frame = frame.f_back
    return None


def _exit(status: int) -> None:
    """``os._exit`` in a worker process: say goodbye first (unless hpcdist itself is ending it)."""
    if not _done and installed():
        mine = _task_in(sys._getframe(1))
        key = mine or running_key()
        if mine is not None:
            reason = f"the task {mine!r} called os._exit({status})"
        elif key is not None:
            thread = threading.current_thread().name
            reason = f"os._exit({status}) was called in thread {thread!r} while task {key!r} ran"
        else:
            reason = f"os._exit({status}) was called (no task running)"
        say(reason)
    _real_exit(status)


def _on_signal(signum: int, frame: Any) -> None:
    """SIGTERM/SIGINT with no handler of the runtime's: say goodbye, then die of it as before."""
    if installed():
        name = signal.Signals(signum).name
        key = running_key()
        # from another thread: this (main) thread may hold the transport's locks mid-message
        t = threading.Thread(target=say, args=(f"received {name}" + (f" while running {key!r}" if key else ""),),
                             daemon=True)
        t.start()
        t.join(0.5)
    if signum == signal.SIGINT:
        signal.default_int_handler(signum, frame)  # KeyboardInterrupt, as without this handler
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
