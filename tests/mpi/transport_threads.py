"""Runtime-shaped use (-n 3): on every rank a daemon comm thread owns recv() and hands
messages to the main thread through a queue; main threads send from outside the comm thread.
Rank 0 asks each worker's main thread to square numbers, then stops them; every rank closes
(finalizes) and prints how long close() took."""

import queue
import threading
import time

import numpy as np
from transport_common import run

from hpcdist.transports.mpi import MPITransport
from hpcdist.runtime.serialize import dumps

N = 100


def main():
    t = MPITransport.from_world()
    inbox = queue.SimpleQueue()

    def comm_loop():
        while True:
            msg = t.recv(None)
            inbox.put(msg)
            if msg[1][0] == "stop":
                return

    comm = threading.Thread(target=comm_loop, daemon=True)
    comm.start()
    if t.rank == 0:
        for i in range(N):
            w = 1 + i % (t.size - 1)
            t.send(w, ("task", i), dumps(np.full(4096, i, np.float64))[1])  # 32 kB out of band
        results = {}
        while len(results) < N:
            src, (kind, i), bufs = inbox.get(timeout=30)
            assert kind == "result" and src == 1 + i % (t.size - 1)
            results[i] = np.frombuffer(bufs[0], np.float64)
        assert all(np.all(results[i] == i * i) for i in range(N))
        print(f"threads ok results={len(results)}", flush=True)
        for w in range(1, t.size):
            t.send(w, ("stop",))
        t.send(0, ("stop",))  # loopback wakes our own comm thread
    while True:
        src, header, bufs = inbox.get(timeout=30)
        if header[0] == "stop":
            break
        arr = np.frombuffer(bufs[0], np.float64)
        t.send(src, ("result", header[1]), [arr * arr])
    comm.join(5)
    assert not comm.is_alive()
    t0 = time.monotonic()
    t.close()
    t.close()  # idempotent
    print(f"closed rank={t.rank} close_ms={(time.monotonic() - t0) * 1e3:.1f}", flush=True)


run(main)
