"""Only rank 0 starts hpcdist; the other ranks run something else (they never join)."""

import time

from mpi4py import MPI

if MPI.COMM_WORLD.Get_rank() == 0:
    import hpcdist

    hpcdist.Client(backend="mpi")
    print("client started", flush=True)
else:
    time.sleep(60)
