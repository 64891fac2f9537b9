"""A deterministic map-reduce over seeded numpy arrays; its digest must not depend on the
backend or the worker count. Imported by test_identical_results.py, and run as a script on
rank 0 of an MPI world (``mpiexec -n N python identical_workload.py`` prints ``DIGEST <hex>``).
"""

from __future__ import annotations

import hashlib

import numpy as np

import hpcdist

BLOCKS = 12
BLOCK_LEN = 40_000


def make_block(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


def transform(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.abs(x)) * np.sin(x) + x * x / 3.0


def combine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a + b


def summary(v: np.ndarray) -> tuple[float, float, int]:
    return float(v.sum()), float(np.sort(v)[len(v) // 2]), int(np.count_nonzero(v > 1.0))


def workload(client: hpcdist.Client) -> str:
    """Run the map-reduce on ``client``; return a digest of every result that came back."""
    blocks = client.map(make_block, range(BLOCKS), [BLOCK_LEN] * BLOCKS)
    level = client.map(transform, blocks)
    while len(level) > 1:  # a fixed pairwise tree: the order of additions never changes
        pairs = [client.submit(combine, level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = pairs + ([level[-1]] if len(level) % 2 else [])
    total = level[0].result(timeout=60)
    stats = client.submit(summary, level[0]).result(timeout=60)
    per_block = client.gather(client.map(summary, client.map(transform, blocks)))
    h = hashlib.sha256(total.tobytes())
    h.update(repr((stats, per_block)).encode())
    return h.hexdigest()


if __name__ == "__main__":
    with hpcdist.Client() as c:
        print("DIGEST", c.backend, c.nworkers, workload(c), flush=True)
