"""A cheap estimate of how many bytes a value would take on the wire.

The scheduler uses it to weigh placements; it must not pickle large values just to measure them.
"""

from __future__ import annotations

import sys
from typing import Any

_SAMPLE = 10


def sizeof(obj: Any) -> int:
    """Estimate the size of ``obj`` in bytes (exact for buffers and numpy arrays)."""
    nbytes = getattr(obj, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(obj, (bytes, bytearray, str)):
        return len(obj)
    if isinstance(obj, memoryview):
        return obj.nbytes
    if isinstance(obj, (list, tuple, set, frozenset)):
        return _container(obj, list(obj)[:_SAMPLE] if isinstance(obj, (set, frozenset)) else obj[:_SAMPLE])
    if isinstance(obj, dict):
        items = list(obj.items())[:_SAMPLE]
        sample = [k for k, _ in items] + [v for _, v in items]
        return _container(obj, sample, factor=2)
    try:
        return sys.getsizeof(obj)
    except TypeError:
        return 64


def _container(obj: Any, sample: Any, factor: int = 1) -> int:
    n = len(obj)
    if not n:
        return sys.getsizeof(obj)
    per_item = sum(sizeof(x) for x in sample) / max(1, len(sample) // factor)
    return sys.getsizeof(obj) + int(per_item * n)
