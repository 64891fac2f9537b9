"""The Transport contract suite on MPI (-n 3): every check of tests/transports/contract_checks.py
in turn, on every rank, with a meeting of all ranks between checks. Each rank prints one line per
check: ``check NAME ok rank=R`` or ``check NAME FAIL rank=R: why``. The ranks meet in a barrier
on COMM_WORLD, outside the transport's own communicator, so no meeting message can reach a check.
MPI is finalized once every rank has printed (output written after MPI_Finalize may be lost).
A rank that cannot go on aborts the world (transport_common.run), so the job never hangs."""

import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for transports.contract_checks

from transport_common import run  # noqa: E402
from transports.contract_checks import CHECKS, SIZE, leftovers  # noqa: E402

from hpcdist.transports.mpi import MPITransport  # noqa: E402


def main():
    t = MPITransport.from_world(finalize=False)  # finalized below, once every line is out
    from mpi4py import MPI  # after from_world, which sets the thread level

    world = MPI.COMM_WORLD
    assert t.size == SIZE, f"run with -n {SIZE}"
    last = list(CHECKS)[-1]  # close: no transport left to look for leftovers with
    for name, check in CHECKS.items():
        world.Barrier()
        try:
            check(t)
            why = None
        except Exception as exc:
            why = "".join(traceback.format_exception_only(type(exc), exc)).strip().replace("\n", " | ")
            traceback.print_exc()
        if name != last:
            world.Barrier()
            strays = leftovers(t)
            if strays and why is None:
                why = f"{strays} message(s) left over for this rank"
        status = "ok" if why is None else f"FAIL rank={t.rank}: {why}"
        print(f"check {name} ok rank={t.rank}" if why is None else f"check {name} {status}", flush=True)
    world.Barrier()
    MPI.Finalize()


run(main)
