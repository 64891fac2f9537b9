"""numpy arrays made on the workers and summed in a binary tree.

Each sum runs where one of its inputs already is, so only the other input moves; the
manifest's ``transfer`` entry reports the input bytes and how many moved between ranks
(``python examples/array_tree/report.py RUN_DIR``).
"""

from __future__ import annotations

import numpy as np


def make(i: int, n: int) -> np.ndarray:
    """A deterministic float64 array of ``n`` values."""
    return np.sin(np.arange(n, dtype=np.float64) + i)


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise sum."""
    return a + b


def checksum(a: np.ndarray) -> dict[str, float | int]:
    """A small summary of the final array."""
    return {"n": int(a.size), "sum": float(a.sum()), "first": float(a[0])}
