"""Started without mpiexec (a one-rank world): from_world must refuse with a clear message."""

import sys

from hpcdist.transports.mpi import MPITransport
from hpcdist.transports.mpienv import in_mpi_world
from hpcdist.errors import TransportError

print(f"in_mpi_world={in_mpi_world()}", flush=True)
try:
    MPITransport.from_world()
except TransportError as exc:
    print(f"TransportError: {exc}", flush=True)
    sys.exit(exc.exit_code)
print("no error raised", flush=True)
sys.exit(0)
