"""``hpcdist doctor``: what this machine offers hpcdist, and a smoke run on every backend.

:func:`diagnose` collects a report (a JSON-ready dict); :func:`format_report` renders it
for people. MPI is only ever initialised in child processes (the library probe and the
``mpiexec -n 3`` smoke run), so the doctor itself stays a plain, non-MPI process.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from typing import Any

from hpcdist.batch import SYSTEMS
from hpcdist.errors import HpcdistError

#: batch and launch commands reported as found or not
COMMANDS = ("mpiexec", "srun", "sbatch", "qsub")

_PROBE = "import json; from hpcdist.transports.mpi import library_info; print(json.dumps(library_info()))"
_SMOKE_MPI = (
    "import hpcdist\n"
    "with hpcdist.Client(backend='mpi') as c:\n"
    "    assert c.gather(c.map(pow, range(10), [2] * 10)) == [i * i for i in range(10)]\n"
    "    print('hpcdist-smoke-ok', c.nworkers)\n"
)


def diagnose(backend: str | None = None, smoke: bool = True, timeout: float = 60.0) -> dict[str, Any]:
    """Collect the doctor's report.

    Args:
        backend: resolve as if ``Client(backend=...)`` had been given this (default: None,
            i.e. ``HPCDIST_BACKEND`` or automatic).
        smoke: run a 2-worker smoke test on each available backend.
        timeout: seconds for each child process (MPI probe, ``mpiexec`` smoke run).

    Returns:
        A dict with keys ``python``, ``hpcdist``, ``numpy``, ``mpi``, ``commands``,
        ``survival`` (see :func:`survival`), ``allocation``, ``backend``, ``smoke``, ``warnings`` and ``problems`` (things that
        are needed and missing or broken; the command exits non-zero when there are any).
    """
    from hpcdist import __version__
    from hpcdist.commands import find_mpiexec

    report: dict[str, Any] = {
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "hpcdist": __version__,
        "numpy": _version("numpy"),
        "warnings": [],
        "problems": [],
    }
    report["mpi"] = _mpi_probe(timeout)
    report["commands"] = {name: (find_mpiexec() if name == "mpiexec" else shutil.which(name)) for name in COMMANDS}
    report["survival"] = survival(report["commands"])
    report["allocation"] = _allocation()
    report["backend"] = _resolution(backend)
    _check(report)
    report["smoke"] = _smoke_all(report, timeout) if smoke else []
    for run in report["smoke"]:
        if run["status"] == "failed":
            report["problems"].append(f"the {run['backend']} backend failed its smoke run: {run['error']}")
    return report


def _version(module: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return None


def _mpi_probe(timeout: float) -> dict[str, Any]:
    """Ask a child process which MPI mpi4py loads (initialising MPI there, not here)."""
    from hpcdist.commands import run_command

    if _version("mpi4py") is None:
        return {"error": "mpi4py is not installed"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_"))}
    try:
        res = run_command([sys.executable, "-c", _PROBE], timeout=timeout, check=False, env=env)
    except HpcdistError as exc:
        return {"error": str(exc)}
    if res.returncode != 0:
        return {"error": f"importing mpi4py.MPI failed (exit {res.returncode}): {res.tail(1)}"}
    try:
        return json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"unexpected output from the MPI probe: {res.stdout.strip()[:200]!r}"}


def survival(commands: dict[str, str | None]) -> list[dict[str, Any]]:
    """Which launch line survives which worker death, for the launchers this machine has.

    One row per line of :data:`hpcdist.launch.SURVIVAL` whose launcher is here: ``srun`` on
    PATH, MPICH's Hydra as the mpiexec found, Open MPI's ``mpirun`` beside the interpreter or on
    PATH. Each row: ``line``, ``command`` (the path found) and ``deaths`` (death -> outcome).
    """
    from hpcdist.launch import SURVIVAL
    from hpcdist.launcher import mpi_flavour

    found: dict[str, str] = {}
    if commands.get("srun"):
        found["srun"] = str(commands["srun"])
    mpiexec = commands.get("mpiexec")
    here = os.path.join(os.path.dirname(sys.executable), "mpirun")
    for candidate in (mpiexec, here if os.access(here, os.X_OK) else None, shutil.which("mpirun")):
        flavour = mpi_flavour(candidate) if candidate else ""
        if flavour and flavour not in found:
            found[flavour] = str(candidate)
    return [{"line": line, "command": found[flavour], "deaths": dict(deaths)}
            for flavour, line, deaths in SURVIVAL if flavour in found]


def _allocation() -> dict[str, Any]:
    """Which batch allocation this runs in, and on how many nodes."""
    for cls in SYSTEMS.values():
        found = cls().allocation(os.environ)
        if found is not None:
            return found
    return {"system": None, "job_id": None, "nodes": 1}


def _resolution(backend: str | None) -> dict[str, Any]:
    from hpcdist.runtime.world import resolve_backend

    try:
        name, reason = resolve_backend(backend)
    except HpcdistError as exc:
        return {"name": None, "reason": None, "error": str(exc)}
    return {"name": name, "reason": reason}


def _check(report: dict[str, Any]) -> None:
    """Turn what was found into warnings and problems."""
    mpi, warn, problems = report["mpi"], report["warnings"], report["problems"]
    resolved = report["backend"].get("name")
    if report["backend"].get("error"):
        problems.append(report["backend"]["error"])
    if report["numpy"] is None:
        warn.append("numpy is not installed: arrays cannot travel out of band")
    in_job = report["allocation"]["system"] is not None
    mpi_needed = resolved == "mpi" or in_job
    missing = []
    if "error" in mpi:
        missing.append(mpi["error"])
    if report["commands"]["mpiexec"] is None:
        missing.append("no mpiexec on PATH (pip install 'hpcdist[mpich]', or load the site's MPI module)")
    for text in missing:
        (problems if mpi_needed else warn).append(f"the mpi backend is unavailable: {text}")
    if mpi.get("thread_level") in ("SINGLE", "FUNNELED"):
        problems.append(f"MPI provides thread level {mpi['thread_level']}; hpcdist needs SERIALIZED or MULTIPLE")
    if mpi.get("from_wheel") and report["allocation"]["nodes"] > 1:
        warn.append(
            f"mpi4py uses the MPI of the PyPI '{mpi['from_wheel']}' wheel inside a {report['allocation']['nodes']}-node "
            "allocation: it may not use the fast interconnect or start under srun; build mpi4py against the "
            "site's MPI (pip install --no-binary mpi4py mpi4py after loading its module)"
        )


def _smoke_all(report: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
    runs = [_smoke_inprocess(name) for name in ("local", "thread", "process")]
    mpiexec = report["commands"]["mpiexec"]
    if "error" in report["mpi"] or mpiexec is None:
        runs.append({"backend": "mpi", "status": "skipped", "seconds": None, "error": "mpi4py or mpiexec missing"})
    else:
        runs.append(_smoke_mpi(mpiexec, timeout))
    return runs


def _smoke_inprocess(name: str) -> dict[str, Any]:
    import hpcdist

    start = time.perf_counter()
    try:
        with hpcdist.Client(backend=name, workers=2) as client:
            squares = client.gather(client.map(pow, range(10), [2] * 10))
            total = client.submit(sum, client.map(pow, range(10), [2] * 10)).result(timeout=30)
        if squares != [i * i for i in range(10)] or total != 285:
            raise HpcdistError(f"wrong results: {squares}, {total}")
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return {"backend": name, "status": "failed", "seconds": time.perf_counter() - start,
                "error": f"{type(exc).__name__}: {exc}"}
    return {"backend": name, "status": "ok", "seconds": time.perf_counter() - start, "error": None}


def _smoke_mpi(mpiexec: str, timeout: float) -> dict[str, Any]:
    from hpcdist.commands import run_command

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_"))}
    env["MPIEXEC_TIMEOUT"] = str(max(1, int(timeout)))
    env.pop("HPCDIST_BACKEND", None)
    start = time.perf_counter()
    try:
        res = run_command([mpiexec, "-n", "3", sys.executable, "-c", _SMOKE_MPI], timeout=timeout + 10,
                          check=False, env=env)
    except HpcdistError as exc:
        return {"backend": "mpi", "status": "failed", "seconds": time.perf_counter() - start, "error": str(exc)}
    seconds = time.perf_counter() - start
    if res.returncode == 0 and "hpcdist-smoke-ok 2" in res.stdout:
        return {"backend": "mpi", "status": "ok", "seconds": seconds, "error": None}
    return {"backend": "mpi", "status": "failed", "seconds": seconds,
            "error": f"mpiexec -n 3 exited {res.returncode}: {res.tail(3)}"}


def format_report(report: dict[str, Any]) -> str:
    """The report as aligned text lines for a terminal."""
    mpi = report["mpi"]
    lines = [
        f"python     {report['python']['version']} ({report['python']['executable']})",
        f"hpcdist    {report['hpcdist']}",
        f"numpy      {report['numpy'] or 'not installed'}",
    ]
    if "error" in mpi:
        lines.append(f"mpi4py     unavailable: {mpi['error']}")
    else:
        origin = f"PyPI wheel '{mpi['from_wheel']}'" if mpi["from_wheel"] else "site/system MPI"
        lines += [
            f"mpi4py     {mpi['mpi4py']}",
            f"MPI        {' '.join(mpi['library_version'].split())} (MPI {mpi['standard']}, thread level {mpi['thread_level']})",
            f"  loaded   {mpi['library_file'] or 'unknown file'} ({origin})",
        ]
    for name, path in report["commands"].items():
        lines.append(f"{name:<10} {path or 'not found'}")
    if report.get("survival"):
        from hpcdist.launch import DEATHS

        width = max(len(row["line"]) for row in report["survival"])
        lines.append(f"survival   {'worker death:':<{width}}  " + "  ".join(f"{d:<10}" for d in DEATHS).rstrip())
        for row in report["survival"]:
            cells = "  ".join(f"{row['deaths'][d]:<10}" for d in DEATHS).rstrip()
            lines.append(f"survival   {row['line']:<{width}}  {cells}")
        lines.append("survival   (survive: the run goes on with the other ranks; all killed: the launcher ends "
                     "every rank, hpcdist names the rank and task and keeps finished results)")
    alloc = report["allocation"]
    if alloc["system"]:
        lines.append(f"allocation {alloc['system']} job {alloc['job_id']}, {alloc['nodes']} node(s)")
    b = report["backend"]
    lines.append(f"backend    {b['name']} ({b['reason']})" if b["name"] else f"backend    error: {b['error']}")
    for run in report["smoke"]:
        secs = "" if run["seconds"] is None else f" in {run['seconds']:.2f} s"
        detail = f": {run['error']}" if run["error"] else ""
        lines.append(f"smoke      {run['backend']:<8} {run['status']}{secs}{detail}")
    lines += [f"warning    {w}" for w in report["warnings"]]
    lines += [f"PROBLEM    {p}" for p in report["problems"]]
    lines.append("status     " + (f"{len(report['problems'])} problem(s)" if report["problems"] else "ok"))
    return "\n".join(lines)
