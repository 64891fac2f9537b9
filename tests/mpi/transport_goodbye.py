"""A worker's goodbye on the MPI transport (under ``mpiexec -disable-auto-cleanup -n 3``): rank 1 sends
messages with large buffers, says goodbye at once (no wait) and exits; rank 0 must receive every one of them, in order,
and then ``(1, (PEER_LOST, "rank 1 (pid P) on HOST: <reason>"), [])``, long before the 30 s bound.
Rank 0 prints ``goodbye ok`` at the end."""

import os
import time

import numpy as np

from transport_common import run

from hpcdist.transports.base import PEER_LOST
from hpcdist.transports.mpi import MPITransport

N = 12
NBYTES = 1 << 21  # past the eager limit: rendezvous sends, still in flight when the goodbye goes


def main():
    t = MPITransport.from_world(failure_timeout_s=30.0)
    if t.rank == 1:
        for i in range(N):
            t.send(0, ("m", i), [np.full(NBYTES, i, dtype=np.uint8)])
        # the worst case: no wait, so the goodbye may overtake the data (another tag); the process
        # lives on a little, driving MPI progress, so the data can still go
        assert t.goodbye("leaving on purpose", wait_s=0.0)
        end = time.monotonic() + 3
        while time.monotonic() < end:
            t.recv(0.01)
        os._exit(0)
    if t.rank == 2:
        while t.recv(0.05) != (0, ("done",), []):
            pass
        t.close()
        return
    got, start = [], time.monotonic()
    while True:
        src, header, bufs = t.recv(20)
        if header[0] == PEER_LOST:
            break
        assert src == 1 and header == ("m", len(got)) and bufs[0].nbytes == NBYTES and bufs[0][-1] == len(got)
        got.append(header[1])
    assert src == 1 and got == list(range(N)), (src, got)
    assert header[1].startswith("rank 1 (pid ") and header[1].endswith(": leaving on purpose"), header
    assert time.monotonic() - start < 20, "the goodbye was not heard: the bound found it"
    t.send(2, ("done",))
    t.close()
    print("goodbye ok", flush=True)


run(main)
