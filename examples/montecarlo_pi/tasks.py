"""Monte Carlo estimate of pi from N seeded batches: the same answer on every backend."""

from __future__ import annotations

import numpy as np


def seeds(batches: int, base: int) -> list[int]:
    """One seed per batch."""
    return [base + i for i in range(batches)]


def hits(seed: int, samples: int) -> int:
    """Points of ``samples`` seeded uniform draws that fall inside the unit quarter circle."""
    rng = np.random.default_rng(seed)
    xy = rng.random((samples, 2))
    return int(np.count_nonzero((xy * xy).sum(axis=1) <= 1.0))


def estimate(counts: list[int], samples: int) -> dict[str, float | int]:
    """pi ~ 4 * inside / total."""
    inside, total = sum(counts), samples * len(counts)
    return {"pi": 4.0 * inside / total, "inside": inside, "samples": total}
