"""Rank 0 dies of an uncaught exception (no try/except, no -m mpi4py) while the workers' daemon
comm threads wait in recv(): the job must end quickly with a non-zero code, not hang."""

import threading
import time

from hpcdist.transports.mpi import MPITransport

t = MPITransport.from_world()
if t.rank == 0:
    time.sleep(0.2)
    raise RuntimeError("bug in the driver")
comm = threading.Thread(target=lambda: t.recv(None), daemon=True)
comm.start()
comm.join()
