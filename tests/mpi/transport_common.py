"""Shared by the transport_*.py MPI scripts: run main() and abort the world on any error."""

import sys
import traceback


def run(main):
    """Call ``main()``; on an exception print it and MPI_Abort so the job never hangs."""
    try:
        main()
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        from mpi4py import MPI

        MPI.COMM_WORLD.Abort(1)
