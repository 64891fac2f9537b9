"""The process the bench starts for each system: ``python -m hpcdist.bench.child SYSTEM ...``.

It runs the workloads in this system's driver and prints one ``BENCH {json}`` line per
result on standard output, which the parent collects. With ``--launch`` it only starts the
system, runs one no-op task and prints ``BENCH {"event": "first_result"}``, so the parent can
time launch to first result from its own clock. With ``--recovery DEATH`` it measures one
recovery from a worker's death (:mod:`hpcdist.bench.recovery`) and prints its record.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import sys
import traceback
from typing import Any

PREFIX = "BENCH "
SYSTEMS = ("hpcdist", "mpi4py.futures", "dask", "processpool", "threadpool")


def emit(record: dict[str, Any]) -> None:
    """Print one result line for the parent."""
    sys.stdout.write(PREFIX + json.dumps(record) + "\n")
    sys.stdout.flush()


def _start(name: str, nworkers: int, sizes: Any, launch: bool, backend: str = "mpi") -> Any:
    if name == "hpcdist" and backend != "mpi":
        from hpcdist import Client
        from hpcdist.bench.systems import HpcdistSystem

        return HpcdistSystem(Client(backend=backend, workers=nworkers))
    if name == "hpcdist":
        if not launch:
            from hpcdist.bench.peers import rawmpi

            raw = rawmpi.measure(sizes.bw_bytes, sizes.raw_pings, sizes.raw_reps)
            if raw:  # rank 0 only
                emit({"workload": "raw_latency", "value": raw["raw_latency_us"]})
                emit({"workload": "raw_bandwidth", "value": raw["raw_bandwidth_gbs"]})
        from hpcdist import Client
        from hpcdist.bench.systems import HpcdistSystem

        return HpcdistSystem(Client())  # on ranks > 0 Client() serves and never returns
    if name == "mpi4py.futures":
        from hpcdist.bench.peers import mpifutures

        return mpifutures.system()
    if name == "dask":
        from hpcdist.bench.peers.dask_peer import DaskSystem

        return DaskSystem(nworkers)
    from hpcdist.bench.systems import process_pool, thread_pool

    return thread_pool(nworkers) if name == "threadpool" else process_pool(nworkers)


def _recovery(system: Any, death: str, nworkers: int, timeout: float) -> int:
    from hpcdist.bench import recovery
    from hpcdist.bench.systems import HpcdistSystem

    emit({"event": "start", "workload": "recovery"})
    faulthandler.dump_traceback_later(timeout, exit=True)
    try:
        out = (recovery.measure(system.client, death) if isinstance(system, HpcdistSystem)
               else recovery.measure_executor(system, nworkers, death))
        emit({"workload": "recovery", **out})
    except Exception as exc:  # noqa: BLE001 - reported in the table, with the traceback on stderr
        traceback.print_exc()
        emit({"workload": "recovery", "error": f"{type(exc).__name__}: {exc}"})
    finally:
        faulthandler.cancel_dump_traceback_later()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the requested workloads on one system; results go to stdout as BENCH lines."""
    p = argparse.ArgumentParser(prog="python -m hpcdist.bench.child")
    p.add_argument("system", choices=SYSTEMS)
    p.add_argument("--workers", type=int, default=3,
                   help="workers for dask, the pools and hpcdist on a backend other than mpi")
    p.add_argument("--backend", default="mpi", choices=("mpi", "thread", "process", "local"),
                   help="hpcdist's backend; mpi runs under mpiexec, the others start in this process")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default="", help="comma-separated workload names")
    p.add_argument("--launch", action="store_true", help="only time launch to first result")
    p.add_argument("--recovery", choices=("sigkill", "exit"),
                   help="only measure one recovery from a worker killed this way (hpcdist only)")
    p.add_argument("--workload-timeout", type=float, default=120.0,
                   help="seconds one workload may take; past it, print every thread's stack and exit")
    args = p.parse_args(argv)

    from hpcdist.bench import tasks, workloads

    sizes = workloads.QUICK if args.quick else workloads.FULL
    # the raw MPI rows are measured in the workloads' world only
    system = _start(args.system, args.workers, sizes, args.launch or bool(args.recovery), args.backend)
    try:
        if args.launch:
            system.value(system.submit(tasks.noop, 1))
            emit({"event": "first_result"})
            return 0
        if args.recovery:
            return _recovery(system, args.recovery, args.workers, args.workload_timeout)
        names = [n for n in args.only.split(",") if n] or list(workloads.RUNNERS)
        for name in names:
            emit({"event": "start", "workload": name})
            # a hung runtime must not hang the bench: dump the stacks (stderr) and end the world
            faulthandler.dump_traceback_later(args.workload_timeout, exit=True)
            try:
                out = workloads.RUNNERS[name](system, sizes)
            except Exception as exc:  # noqa: BLE001 - one failed workload must not hide the others
                traceback.print_exc()
                emit({"workload": name, "error": f"{type(exc).__name__}: {exc}"})
                continue
            finally:
                faulthandler.cancel_dump_traceback_later()
            # None: the workload does not apply here (bandwidth without task placement)
            emit({"workload": name, **out} if out is not None else
                 {"workload": name, "value": None, "skipped": "does not apply to this system"})
        return 0
    finally:
        system.close()


if __name__ == "__main__":
    sys.exit(main())
