"""Measurements (printed, not asserted): hot and cold round trip between comm threads,
64 MiB bandwidth rank 1 -> rank 2 through the transport vs raw Send/Recv. Needs -n 3."""

import statistics
import time

import numpy as np
from transport_common import run

from hpcdist.transports.mpi import MPITransport
from hpcdist.runtime.serialize import dumps

HOT = 2000
COLD = 3
REPS = 7
MB64 = 64 << 20


def main():
    t = MPITransport.from_world(detect=False)  # rank 2 waits in barriers while 0 and 1 measure
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    r = t.rank
    # -- latency: rank 0 <-> rank 1, both in their recv loops
    if r == 0:
        hot = []
        for i in range(HOT):
            t0 = time.perf_counter()
            t.send(1, ("ping", i))
            src, h, _ = t.recv(10)
            hot.append(time.perf_counter() - t0)
            assert h == ("pong", i)
        cold = []
        for i in range(COLD):
            assert t.recv(2.0) is None  # 2 s idle: both sides back off to the cap
            t0 = time.perf_counter()
            t.send(1, ("ping", i))
            src, h, _ = t.recv(10)
            cold.append(time.perf_counter() - t0)
        t.send(1, ("done",))
        hot_us = statistics.median(hot[100:]) * 1e6
        p90 = sorted(hot[100:])[int(0.9 * len(hot[100:]))] * 1e6
        print(f"hot_rtt_us median={hot_us:.1f} p90={p90:.1f}", flush=True)
        print(f"cold_rtt_ms median={statistics.median(cold) * 1e3:.2f} max={max(cold) * 1e3:.2f}", flush=True)
    elif r == 1:
        while True:
            src, h, _ = t.recv(None)
            if h[0] == "done":
                break
            t.send(src, ("pong", h[1]))
    world.Barrier()
    # -- bandwidth rank 1 -> rank 2 through the transport (pickle 5 out of band)
    arr = np.random.default_rng(1).integers(0, 255, MB64, dtype=np.uint8) if r == 1 else None
    times = []
    for rep in range(REPS):
        world.Barrier()
        if r == 1:
            t0 = time.perf_counter()
            t.send(2, ("arr", rep), dumps(arr)[1])
            assert t.recv(30)[1] == ("ack", rep)
            times.append(time.perf_counter() - t0)
        elif r == 2:
            src, h, bufs = t.recv(30)
            t.send(1, ("ack", h[1]))
    # -- raw Send/Recv into a fresh np.empty, main thread, same pattern
    raw = []
    for rep in range(REPS):
        world.Barrier()
        if r == 1:
            t0 = time.perf_counter()
            world.Send([arr, MPI.BYTE], 2, 77)
            world.Recv(bytearray(1), 2, 78)
            raw.append(time.perf_counter() - t0)
        elif r == 2:
            buf = np.empty(MB64, np.uint8)
            world.Recv([buf, MPI.BYTE], 1, 77)
            world.Send(bytearray(1), 1, 78)
    if r == 1:
        tm, rm = statistics.median(times), statistics.median(raw)
        print(
            f"bw64_transport ms={tm * 1e3:.1f} GBps={MB64 / tm / 1e9:.2f} raw ms={rm * 1e3:.1f} "
            f"GBps={MB64 / rm / 1e9:.2f} ratio={rm / tm:.2f}",
            flush=True,
        )
    world.Barrier()
    t.close()


run(main)
