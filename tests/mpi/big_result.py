"""Rank 0 cannot allocate a large receive buffer (simulated): that result fails, the world goes on."""

import numpy as np

from hpcdist.transports import base, mpi

mpi.CHUNK_BYTES = 1 << 20  # every rank sends in 1 MiB pieces, so the data can be discarded in pieces
BIG = 4 << 20
real = base.allocate


def ones(n):
    return np.ones(n, dtype=np.uint8)


def total(a):
    return int(a.sum())


import hpcdist  # noqa: E402

with hpcdist.Client() as client:  # ranks > 0 serve from here on
    big = client.submit(ones, BIG, pure=False)
    big.exception(timeout=60)

    def scarce(nbytes):
        if nbytes >= 2 << 20:
            raise MemoryError(f"simulated: no {nbytes} bytes")
        return real(nbytes)

    base.allocate = scarce  # on rank 0 only
    try:
        big.result(timeout=60)
        print("big result arrived: the simulation did not work")
    except MemoryError as exc:
        print("big result refused: MemoryError:", exc)
    assert client.submit(total, big, pure=False).result(timeout=60) == BIG
    assert client.submit(ones, 1000, pure=False).result(timeout=60).sum() == 1000
    base.allocate = real
    assert int(big.result(timeout=60).sum()) == BIG
    print("world goes on")
