"""The task functions every benchmarked system runs (importable by name on every worker)."""

from __future__ import annotations

import os
import time

import numpy as np


def noop(x: object = None) -> object:
    """The tiny task: returns its argument."""
    return x


def make_array(nbytes: int, seed: int = 0) -> np.ndarray:
    """A fresh float64 array of ``nbytes`` bytes (touched, so its pages exist)."""
    return np.full(nbytes // 8, float(seed))


def inc(a: np.ndarray) -> np.ndarray:
    """A new array: ``a + 1``."""
    return a + 1.0


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A new array: ``a + b``."""
    return a + b


def total(a: np.ndarray) -> float:
    """The sum of an array as a Python float (a few bytes back to the driver)."""
    return float(a.sum())


def nbytes_of(a: np.ndarray) -> int:
    """The size of an array that was moved here (the bandwidth workload's consumer)."""
    return int(a.nbytes)


def getpid(_: object = None) -> int:
    """The worker's process id."""
    return os.getpid()


def hold(folder: str, index: int) -> int:
    """The recovery workload's long task: log this start, then wait for the driver's word.

    Appends ``"pid monotonic wall"`` to ``folder/index.starts`` at each start (a task restarted
    on another worker logs again, with that worker's pid), then waits until ``folder/release``
    exists. A worker whose pid is named by ``folder/exit-PID`` first logs its time of death in
    ``folder/died`` and leaves with ``os._exit(3)`` (a death with no signal: Hydra's
    ``-disable-auto-cleanup`` lets the survivors live on). Returns this worker's pid.
    """
    pid = os.getpid()
    with open(os.path.join(folder, f"{index}.starts"), "a", encoding="utf-8") as fh:
        fh.write(f"{pid} {time.monotonic()!r} {time.time()!r}\n")
    release, order = os.path.join(folder, "release"), os.path.join(folder, f"exit-{pid}")
    while not os.path.exists(release):
        if os.path.exists(order):
            with open(os.path.join(folder, "died.tmp"), "w", encoding="utf-8") as fh:
                fh.write(f"{time.monotonic()!r} {time.time()!r}\n")
            os.replace(os.path.join(folder, "died.tmp"), os.path.join(folder, "died"))
            os._exit(3)
        time.sleep(0.002)
    return pid
