"""Estimate pi by Monte Carlo on every worker: the hpcdist quick-start example.

Run it on 4 local MPI ranks (rank 0 schedules, ranks 1-3 work):

    hpcdist run -n 4 examples/pi/pi.py --samples 4000000

Each batch is seeded, so the estimate is the same on every backend and worker count.
"""

from __future__ import annotations

import argparse

import numpy as np

import hpcdist


def count_inside(seed: int, n: int) -> int:
    """How many of ``n`` seeded random points in the unit square fall inside the quarter circle."""
    rng = np.random.default_rng(seed)
    xy = rng.random((n, 2))
    return int(np.count_nonzero((xy * xy).sum(axis=1) <= 1.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=float, default=4e6, help="total random points")
    parser.add_argument("--batches", type=int, default=32, help="tasks to split the work into")
    opts = parser.parse_args()
    samples = int(opts.samples)
    per_batch = max(1, samples // opts.batches)

    with hpcdist.Client() as client:
        counts = client.map(count_inside, range(opts.batches), [per_batch] * opts.batches)
        total = client.submit(sum, counts)
        inside = total.result()
        where = sorted({rank for ranks in client.who_has(counts).values() for rank in ranks})
    estimate = 4.0 * inside / (per_batch * opts.batches)
    print(f"pi ~ {estimate:.6f} from {per_batch * opts.batches} samples in {opts.batches} tasks "
          f"on {len(where)} workers (ranks {where})")


if __name__ == "__main__":
    main()
