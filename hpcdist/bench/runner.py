"""The parent side of ``hpcdist bench``: start each system's world, collect its results.

Each system runs in processes of its own, started here: ``mpiexec -n N`` for hpcdist on the
mpi backend and for mpi4py.futures, a plain Python process for hpcdist on the other backends
(``Client(backend=..., workers=N-1)`` inside it), dask.distributed (LocalCluster) and the
concurrent.futures pools. Launch to first result is timed here, from ``Popen`` to the
child's ``first_result`` line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from hpcdist.backends import canonical_name
from hpcdist.bench.child import PREFIX
from hpcdist.bench.workloads import RUNNERS
from hpcdist.errors import HpcdistError
from hpcdist.commands import find_mpiexec

#: the peers of the mpi backend (the default)
PEERS = ("mpi4py.futures", "dask", "processpool")
#: backend -> the peers measured next to it by default
BACKEND_PEERS = {
    "mpi": PEERS,
    "process": ("processpool", "dask"),
    "thread": ("threadpool", "dask"),
    "local": ("threadpool", "dask"),
}
#: rows and peers that need an MPI world: "n/a" on the other backends
MPI_ONLY_WORKLOADS = ("raw_latency", "raw_bandwidth")
MPI_ONLY_PEERS = ("mpi4py.futures",)
#: every workload name ``--only`` accepts
WORKLOADS = (*RUNNERS, "launch", "recovery")
#: launches timed per system (median reported)
LAUNCHES = {False: 3, True: 1}
#: worlds that each lose a worker in the recovery row (median reported)
RECOVERIES = {False: 5, True: 1}
#: (trace off, trace on) worlds measured in alternation for the "trace on" row
TRACE_PAIRS = {False: 3, True: 1}
#: seconds one recovery world may take
RECOVERY_TIMEOUT_S = 90.0
#: the peers whose recovery is not measured, and what the table shows for them
RECOVERY_NOT_MEASURED = {"dask": "—"}


def peer_available(name: str) -> bool:
    """Whether a peer can be measured here (its package importable, mpiexec found)."""
    if name in ("processpool", "threadpool"):
        return True
    if name == "mpi4py.futures":
        return importlib.util.find_spec("mpi4py") is not None and find_mpiexec() is not None
    if name == "dask":
        return importlib.util.find_spec("distributed") is not None
    known = sorted({p for peers in BACKEND_PEERS.values() for p in peers})
    raise HpcdistError(f"unknown bench peer {name!r}; known: {', '.join(known)}")


def child_argv(system: str, nranks: int, args: Sequence[str], backend: str = "mpi") -> list[str]:
    """The command that starts ``system`` with ``nranks`` processes (driver included).

    ``backend`` only matters for hpcdist: ``mpi`` starts it under ``mpiexec -n nranks``, any
    other backend in one plain process that starts ``nranks - 1`` workers itself.
    """
    child = [sys.executable, "-m", "hpcdist.bench.child"]
    if system == "hpcdist" and backend != "mpi":
        return [*child, system, "--backend", backend, "--workers", str(nranks - 1), *args]
    if system in ("hpcdist", "mpi4py.futures"):
        mpiexec = find_mpiexec()
        if mpiexec is None:
            raise HpcdistError("no mpiexec found: install the mpich extra (pip install 'hpcdist[mpich]') "
                               "or load your site's MPI module")
        if system == "mpi4py.futures":
            child = [sys.executable, "-m", "mpi4py.futures", "-m", "hpcdist.bench.child"]
        return [mpiexec, "-n", str(nranks), *child, system, *args]
    return [*child, system, "--workers", str(nranks - 1), *args]


def recovery_setup(system: str, nranks: int, backend: str) -> tuple[list[str] | None, str]:
    """How the recovery row kills a worker of ``system``: (the child's command or None, what it says).

    hpcdist on the process backend: a worker SIGKILLed from the driver (that backend hears the
    death at once, from the worker's pipe). On the mpi backend: Hydra ``mpiexec
    -disable-auto-cleanup`` and a worker that calls ``os._exit(3)`` (Hydra SIGKILLs every rank
    when one dies by a signal), found by the MPI failure detector; ``None`` when this version
    has none. The thread and local backends have no worker process to kill. ProcessPoolExecutor
    and mpi4py.futures (under a plain ``mpiexec``, as in the other rows): a SIGKILL.
    """
    workers = ["--workers", str(nranks - 1)]
    if system == "hpcdist" and backend == "process":
        return (child_argv(system, nranks, ["--recovery", "sigkill"], backend),
                "process backend, worker SIGKILLed; a dead worker's pipe closes, so the death is seen at once")
    if system == "hpcdist" and backend == "mpi":
        if importlib.util.find_spec("hpcdist.transports.liveness") is None:
            return None, "the mpi backend has no failure detector in this version"
        argv = child_argv(system, nranks, ["--recovery", "exit"], backend)
        bound = os.environ.get("HPCDIST_FAILURE_TIMEOUT", "2 (default)")
        return ([argv[0], "-disable-auto-cleanup", *argv[1:]],
                f"mpiexec -disable-auto-cleanup (Hydra), worker os._exit(3), failure detector "
                f"HPCDIST_FAILURE_TIMEOUT={bound} s")
    if system == "hpcdist":
        return None, f"the {backend} backend has no worker process to kill"
    if system in ("processpool", "mpi4py.futures"):
        return child_argv(system, nranks, ["--recovery", "sigkill", *workers], backend), "worker SIGKILLed"
    return None, "not measured"


def run_recovery(system: str, nranks: int, quick: bool, timeout: float, backend: str) -> dict[str, Any]:
    """The recovery row's record for ``system``: the median of :data:`RECOVERIES` worlds, or why there is none."""
    if system in RECOVERY_NOT_MEASURED:
        return {"value": None, "note": RECOVERY_NOT_MEASURED[system], "extra": {"how": "not measured"}}
    argv, how = recovery_setup(system, nranks, backend)
    if argv is None:
        return {"value": None, "skipped": how, "extra": {"how": how}}
    times, runs = [], []
    for _ in range(RECOVERIES[quick]):
        recs, _, code, tail = run_child(argv, min(timeout, RECOVERY_TIMEOUT_S))
        rec = next((r for r in recs if r.get("workload") == "recovery"), None)
        if rec is None or (rec.get("error") and system != "hpcdist"):
            # a peer's world that ends with its worker: it does not survive the death
            return {"value": None, "note": "dies", "extra": {"how": how, "exit": code, "error": tail[-200:]}}
        if rec.get("error") or rec.get("value") is None:
            return {**rec, "extra": {**rec.get("extra", {}), "how": how, "exit": code, "stderr": tail[-400:]}}
        times.append(rec["value"])
        runs.append(rec.get("extra", {}))
    return {"value": statistics.median(times),
            "extra": {"how": how, "repeats": [round(t, 4) for t in times], "runs": runs}}


def _environment(timeout: float, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ, **(extra or {}))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["MPIEXEC_TIMEOUT"] = str(max(1, int(timeout)))
    return env


def run_child(argv: Sequence[str], timeout: float,
              env: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], float | None, int, str]:
    """Run one child (``env``: variables set for it) and collect its BENCH records.

    Returns:
        (records, seconds from start to the ``first_result`` line or None, exit status,
        the last lines of its standard error).
    """
    records: list[dict[str, Any]] = []
    first: list[float] = []
    started: list[str] = []
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                text=True, env=_environment(timeout, env))

        def read() -> None:
            for line in proc.stdout:
                if not line.startswith(PREFIX):
                    continue
                rec = json.loads(line[len(PREFIX):])
                if rec.get("event") == "first_result":
                    first.append(time.perf_counter() - t0)
                elif rec.get("event") == "start":
                    started.append(rec["workload"])
                else:
                    records.append(rec)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout + 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        reader.join(5)
        proc.stdout.close()
        err.seek(0)
        text = err.read().strip()
    unfinished = [w for w in started if not any(r.get("workload") == w for r in records)]
    if code != 0 and unfinished:
        records.append({"workload": unfinished[-1], "error": f"did not finish (world exited with status {code})"})
    tail = "\n".join(text.splitlines()[-40:])
    return records, (first[0] if first else None), code, tail


def run_trace_cost(nranks: int, quick: bool, timeout: float, backend: str) -> dict[str, Any]:
    """The "trace on" row: hpcdist's tiny-task figure with ``HPCDIST_TRACE_DIR`` set, against the same
    figure with it unset, measured in alternation (:data:`TRACE_PAIRS` pairs, medians) so that a drift of
    the machine's load weighs on both; ``cost_pct`` is the difference, and ``bytes_per_task`` the trace's size."""
    argv = child_argv("hpcdist", nranks, (["--quick"] if quick else []) + ["--only", "tiny_map"], backend)
    on, off, sizes = [], [], []
    for _ in range(TRACE_PAIRS[quick]):
        for traced in (False, True):
            with tempfile.TemporaryDirectory(prefix="hpcdist-bench-trace-") as tdir:
                recs, _, code, tail = run_child(argv, timeout, {"HPCDIST_TRACE_DIR": tdir} if traced else None)
                rec = next((r for r in recs if r.get("workload") == "tiny_map" and r.get("value")), None)
                if rec is None:
                    return {"value": None, "error": f"exit {code}: {tail[-200:]}"}
                (on if traced else off).append(rec["value"])
                if traced:
                    nbytes = sum(f.stat().st_size for f in Path(tdir).rglob("*") if f.is_file())
                    ex = rec.get("extra", {})  # its runs and the warm-up's (at most 200 tasks)
                    ntasks = ex.get("tasks", 1) * ex.get("reps", 1) + min(200, ex.get("tasks", 1))
                    sizes.append(nbytes / ntasks)
    t_on, t_off = statistics.median(on), statistics.median(off)
    return {"value": t_on, "cost_pct": 100.0 * (t_on - t_off) / t_off,
            "extra": {"trace_off": t_off, "on": on, "off": off, "bytes_per_task": round(statistics.median(sizes), 1)}}


def run_bench(nranks: int = 4, quick: bool = False, only: Sequence[str] = (), peers: Sequence[str] | None = None,
              timeout: float = 300.0, progress: Callable[[str], None] = lambda s: None,
              backend: str = "mpi") -> dict[str, Any]:
    """Measure hpcdist and the peers on every (or the ``only``) workload.

    Args:
        nranks: processes per system, driver included (mpiexec -n, or the driver plus
            nranks-1 workers on the other backends; peers get nranks-1 workers).
        quick: fewer repetitions (same array sizes), for a smoke test.
        only: workload names to run (default all, see :data:`WORKLOADS`).
        peers: peers to measure besides hpcdist (default: the backend's, see
            :data:`BACKEND_PEERS`); those not installed are reported so.
        timeout: seconds one child may run.
        progress: called with a short line before each child starts.
        backend: hpcdist's backend (``mpi``, ``thread``, ``process``, ``local`` or an alias).

    Returns:
        ``{"nranks", "quick", "backend", "systems": {name: "ok" | "not installed" | "failed: ..."},
        "results": {workload: {system: record}}, "stderr": {failed system: its last lines},
        "not_applicable": {row or peer: why}}``; a record has ``value`` and may have
        ``bytes_via_master``, ``extra``, ``error`` or ``skipped`` (why there is no value).
    """
    backend = canonical_name(backend, "--backend")
    if nranks < 2:
        raise HpcdistError(f"-n {nranks}: the bench needs at least 2 ranks (1 scheduler + workers)")
    if peers is None:
        peers = BACKEND_PEERS[backend]
    not_applicable: dict[str, str] = {}
    if backend != "mpi":
        peers = [p for p in peers if p not in MPI_ONLY_PEERS]
        not_applicable = {name: "they need the mpi backend" for name in ("raw MPI rows", *MPI_ONLY_PEERS)}
    unknown = sorted(set(only) - set(WORKLOADS))
    if unknown:
        raise HpcdistError(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
    names = [w for w in WORKLOADS if not only or w in only]
    in_child = [w for w in names if w in RUNNERS]
    systems: dict[str, str] = {}
    failures: dict[str, str] = {}
    results: dict[str, dict[str, Any]] = {}
    flags = (["--quick"] if quick else []) + (["--only", ",".join(in_child)] if only else [])
    if backend != "mpi" and in_child:
        for name in MPI_ONLY_WORKLOADS:
            results[name] = {"hpcdist": {"workload": name, "skipped": "needs the mpi backend"}}
    for system in ("hpcdist", *peers):
        if system != "hpcdist" and not peer_available(system):
            systems[system] = "not installed"
            continue
        systems[system] = "ok"
        if in_child:
            progress(f"{system}: workloads ({', '.join(in_child)})")
            recs, _, code, tail = run_child(child_argv(system, nranks, flags, backend), timeout)
            for rec in recs:
                results.setdefault(rec["workload"], {})[system] = rec
            if code != 0:
                hung = [r["workload"] for r in recs if r.get("error", "").startswith("did not finish")]
                where = f" during {hung[0]}" if hung else ""
                systems[system] = f"failed: exit {code}{where}: {tail.splitlines()[-1] if tail else 'no output'}"
                failures[system] = tail
                continue
        if "launch" in names:
            progress(f"{system}: launch to first result")
            times = []
            for _ in range(LAUNCHES[quick]):
                _, first, code, tail = run_child(child_argv(system, nranks, ["--launch"], backend),
                                                 min(timeout, 120))
                if first is None or code != 0:
                    results.setdefault("launch", {})[system] = {"error": f"exit {code}: {tail[-200:]}"}
                    break
                times.append(first)
            else:
                results.setdefault("launch", {})[system] = {"value": statistics.median(times),
                                                            "extra": {"launches": [round(t, 3) for t in times]}}
        if system == "hpcdist" and "tiny_map" in names and backend != "local":
            progress("hpcdist: tiny tasks with the trace on and off")
            results["tiny_map_trace"] = {"hpcdist": {"workload": "tiny_map_trace",
                                                     **run_trace_cost(nranks, quick, timeout, backend)}}
        if "recovery" in names:
            progress(f"{system}: recovery from a worker's death")
            results.setdefault("recovery", {})[system] = {"workload": "recovery",
                                                          **run_recovery(system, nranks, quick, timeout, backend)}
    return {"nranks": nranks, "quick": quick, "backend": backend, "systems": systems, "results": results,
            "stderr": failures, "not_applicable": not_applicable}
