"""The task functions every benchmarked system runs (importable by name on every worker)."""

from __future__ import annotations

import os

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
