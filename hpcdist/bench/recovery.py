"""The "recovery" row, measured inside hpcdist's driver: a worker dies, how soon does its task run again?

One long task (:func:`hpcdist.bench.tasks.hold`) is submitted per worker; once every one has
started, the worker running the first is killed at a known time on the machine's monotonic clock
(``time.monotonic()`` is the same clock in every process of one host): SIGKILLed from the driver
(``death="sigkill"``), or told to leave with ``os._exit(3)``, the task noting the time just
before (``death="exit"``, for Hydra ``-disable-auto-cleanup``, which reaps every rank after a
signal death). The other tasks are then let go, so the survivors are free; the lost task logs
its restart on its new worker, and the figure is restart minus death. The time rank 0 declared
the worker lost (``client.lost_workers``) splits it into detection and re-placement.

Each measurement needs a world of its own (it costs a worker): the bench starts one child per
repeat (``python -m hpcdist.bench.child hpcdist --recovery DEATH``) and reports the median.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import tempfile
import time
from typing import Any

from hpcdist.bench import tasks

#: the ways a worker is made to die
DEATHS = ("sigkill", "exit")
#: seconds the driver waits for each step (every task started; the lost task back) before it gives up
STEP_BOUND_S = 30.0


def _starts(folder: str, index: int) -> list[tuple[int, float, float]]:
    try:
        with open(os.path.join(folder, f"{index}.starts"), encoding="utf-8") as fh:
            lines = [line.split() for line in fh if line.endswith("\n")]
    except FileNotFoundError:
        return []
    return [(int(p), float(m), float(w)) for p, m, w in lines]


def _until(what: str, ready: Any) -> Any:
    deadline = time.monotonic() + STEP_BOUND_S
    while True:
        got = ready()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"recovery: {what} within {STEP_BOUND_S:.0f} s")
        time.sleep(0.002)


def _kill(folder: str, pid: int, death: str) -> tuple[float, float]:
    """Kill worker ``pid``; returns the time of death (monotonic, wall)."""
    if death == "sigkill":
        mono, wall = time.monotonic(), time.time()
        os.kill(pid, signal.SIGKILL)
        return mono, wall
    open(os.path.join(folder, f"exit-{pid}"), "w").close()
    path = os.path.join(folder, "died")
    _until("the worker did not exit", lambda: os.path.exists(path))
    with open(path, encoding="utf-8") as fh:
        mono, wall = fh.read().split()
    return float(mono), float(wall)


def measure(client: Any, death: str) -> dict[str, Any]:
    """One recovery on ``client``'s world (which loses a worker): seconds from death to restart.

    Args:
        client: an :class:`hpcdist.Client` with at least two workers, all on this host.
        death: ``"sigkill"`` (from the driver) or ``"exit"`` (``os._exit(3)`` in the task).

    Returns:
        ``{"value": seconds, "extra": {"death", "detect_s", "replace_s", "rank"}}``; ``detect_s``
        is death to rank 0's declaring the worker lost (wall clock), ``replace_s`` the rest.

    Raises:
        TimeoutError: a step did not happen within :data:`STEP_BOUND_S`.
    """
    if death not in DEATHS:
        raise ValueError(f"death must be one of {DEATHS}, not {death!r}")
    n = client.nworkers
    with tempfile.TemporaryDirectory(prefix="hpcdist-recovery-") as folder:
        futures = [client.submit(tasks.hold, folder, i, pure=False) for i in range(n)]
        _until(f"not every one of the {n} long tasks started", lambda: all(_starts(folder, i) for i in range(n)))
        victim = _starts(folder, 0)[0][0]
        before = set(client.lost_workers)
        mono, wall = _kill(folder, victim, death)
        open(os.path.join(folder, "release"), "w").close()
        again = _until("the lost task did not start again", lambda: _starts(folder, 0)[1:])
        new_pid, restarted, _ = again[0]
        results = [f.result(timeout=STEP_BOUND_S) for f in futures]
        lost = {r: t for r, (_, t) in client.lost_workers.items() if r not in before}
    assert new_pid != victim and results[0] == new_pid and victim not in results, (victim, new_pid, results)
    total = restarted - mono
    detect = (min(lost.values()) - wall) if lost else None
    return {"value": total, "extra": {
        "death": death, "rank": next(iter(lost), None),
        "detect_s": None if detect is None else round(detect, 4),
        "replace_s": None if detect is None else round(total - detect, 4)}}


def measure_executor(system: Any, nworkers: int, death: str) -> dict[str, Any]:
    """The same death in a ``concurrent.futures`` peer: does the pool survive it?

    Returns a record with no value: ``note`` is ``"dies"`` when the lost task's future (or any
    other) fails, with the error in ``extra``; a pool that ran the lost task again elsewhere
    gets its restart time as ``value``.
    """
    with tempfile.TemporaryDirectory(prefix="hpcdist-recovery-") as folder:
        futures = [system.executor.submit(tasks.hold, folder, i) for i in range(nworkers)]
        _until(f"not every one of the {nworkers} long tasks started",
               lambda: all(_starts(folder, i) for i in range(nworkers)))
        mono, _ = _kill(folder, _starts(folder, 0)[0][0], death)
        open(os.path.join(folder, "release"), "w").close()
        cf.wait(futures, timeout=STEP_BOUND_S)
        errors = [f.exception() for f in futures if f.done() and f.exception() is not None]
        again = _starts(folder, 0)[1:]
    if errors or not again:
        error = f"{type(errors[0]).__name__}: {errors[0]}" if errors else "the lost task never ran again"
        return {"value": None, "note": "dies", "extra": {"death": death, "error": error[:200],
                                                         "failed_futures": len(errors)}}
    return {"value": again[0][1] - mono, "extra": {"death": death}}
