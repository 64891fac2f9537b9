"""Idle CPU: every rank sits in recv() for IDLE_S seconds with no traffic and prints the CPU
it used (user + system of the whole process, comm thread included) as a percentage."""

import os
import time

from transport_common import run

from hpcdist.transports.mpi import MPITransport

IDLE_S = float(os.environ.get("IDLE_S", "2.0"))


def main():
    t = MPITransport.from_world()
    t.recv(0.05)  # settle after start-up
    c0, w0 = time.process_time(), time.monotonic()
    got = t.recv(IDLE_S)
    cpu, wall = time.process_time() - c0, time.monotonic() - w0
    assert got is None, got
    print(f"idle rank={t.rank} wall_s={wall:.2f} cpu_pct={100 * cpu / wall:.2f}", flush=True)
    t.close()


run(main)
