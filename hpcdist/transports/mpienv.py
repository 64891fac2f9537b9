"""Where this process was launched, read from the environment only (never imports mpi4py).

Whether an MPI launcher started it in a world of several ranks (:func:`in_mpi_world`),
whether a batch system started several copies outside one world (:func:`lone_copy`), and the
MPI transport's settings and messages that need no MPI library.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping

from hpcdist.errors import TransportError

#: timer slack of the comm thread, in ns (Linux prctl PR_SET_TIMERSLACK)
TIMER_SLACK_NS = 1000
#: default cap of the idle wait, in ms (env HPCDIST_POLL_MAX_MS overrides)
POLL_MAX_MS = 5.0

# launcher variables that give the world size: hydra/PMI-1/PMI-2 (MPICH, Intel MPI, srun
# --mpi=pmi2, Cray), Open MPI, MVAPICH2
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def env_int(name: str, env: Mapping[str, str] | None = None) -> int | None:
    """The integer value of the variable ``name`` in ``env`` (default ``os.environ``), or None."""
    try:
        return int((os.environ if env is None else env)[name])
    except (KeyError, ValueError):
        return None


def in_mpi_world(env: Mapping[str, str] | None = None) -> bool:
    """Whether an MPI launcher started this process in a world of more than one rank.

    Reads launcher environment variables only (``env``, default ``os.environ``); never
    imports mpi4py.
    """
    env = os.environ if env is None else env
    for name in _SIZE_VARS:
        size = env_int(name, env)
        if size is not None:
            return size > 1
    if (env_int("MPI_LOCALNRANKS", env) or 0) > 1:  # hydra, per node
        return True
    if "PMIX_RANK" in env or "PMI_RANK" in env:  # srun --mpi=pmix: size from SLURM
        size = env_int("SLURM_STEP_NUM_TASKS", env) or env_int("SLURM_NTASKS", env)
        return size is not None and size > 1
    return False


#: variables an MPI launcher sets in each process it starts (also in a world of one)
_LAUNCH_VARS = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "MPI_LOCALNRANKS")


def lone_copy(env: Mapping[str, str] | None = None) -> str | None:
    """Why this process looks like one of several copies a batch system started without MPI.

    ``srun -n 3 python driver.py`` (no ``--mpi``) starts three processes that each see an MPI
    world of one; so does an MPI launch of one rank in a Grid Engine job of several slots. An
    automatic backend choice would run the driver once per copy. Reads ``env`` (default
    ``os.environ``) only; call it when :func:`in_mpi_world` is False.

    Returns:
        A message naming the fix, or None when nothing more than one process was promised.
    """
    env = os.environ if env is None else env
    if in_mpi_world(env):
        return None
    step = env_int("SLURM_STEP_NUM_TASKS", env)
    if step is None and "SLURM_STEP_ID" in env:  # an srun step of a SLURM that does not set it
        step = env_int("SLURM_NTASKS", env)
    if step is not None and step > 1:
        rank = env.get("SLURM_PROCID", "?")
        return (f"srun started {step} copies of this program (SLURM_STEP_NUM_TASKS={step}, this is task {rank}) "
                "but none is in an MPI world with the others, so each would run the whole driver on its own: "
                "launch with `srun --mpi=pmi2 ...` (or the site's PMI, see `srun --mpi=list`), or start one "
                "copy with `hpcdist exec`/`hpcdist run`; to run each copy alone on purpose, choose a backend "
                "(HPCDIST_BACKEND=process)")
    slots = env_int("NSLOTS", env)
    if slots is not None and slots > 1 and any(name in env for name in _LAUNCH_VARS):
        return (f"an MPI launcher started this program in a world of one rank, but the Grid Engine job has "
                f"NSLOTS={slots} slots: launch with `mpiexec -n $NSLOTS` of the MPI mpi4py was built with, or "
                "with `hpcdist exec`; to run one process on purpose, choose a backend (HPCDIST_BACKEND=process)")
    return None


def poll_max_seconds() -> float:
    """The idle-wait cap in seconds: ``HPCDIST_POLL_MAX_MS`` or :data:`POLL_MAX_MS`."""
    text = os.environ.get("HPCDIST_POLL_MAX_MS")
    if text is None or not text.strip():
        return POLL_MAX_MS / 1000.0
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 10_000:
        raise TransportError(f"HPCDIST_POLL_MAX_MS={text!r}: expected a number of milliseconds in (0, 10000]")
    return value / 1000.0


def tighten_timer_slack() -> None:
    """Ask Linux to wake this thread within :data:`TIMER_SLACK_NS` of its timeouts.

    The default slack of 50 µs made every 10 µs poll wait last ~60 µs, which added up to
    most of a task's round trip. Elsewhere (or if prctl is unavailable) nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(29, TIMER_SLACK_NS, 0, 0, 0)  # PR_SET_TIMERSLACK
    except (OSError, AttributeError):
        pass


def size1_message() -> str:
    """Why an MPI world of one rank cannot run hpcdist, naming the launch to use."""
    promised = [
        f"{name}={os.environ[name]}" for name in ("SLURM_NTASKS", "NSLOTS") if (env_int(name) or 0) > 1
    ]
    if promised:
        return (
            f"the batch system promised several tasks ({', '.join(promised)}) but this MPI world has "
            "size 1: the ranks were started as separate one-rank worlds (plain `srun` without "
            "`--mpi=pmi2`, or an mpiexec from another MPI than the one mpi4py was built with); launch "
            "with `srun --mpi=pmi2` or with the mpiexec of mpi4py's MPI"
        )
    return "hpcdist needs at least 2 MPI ranks: rank 0 schedules, the others work"


MPI4PY_FUTURES_MESSAGE = (
    "this program was started with `python -m mpi4py.futures`: the other ranks serve mpi4py.futures, "
    "not hpcdist, so no hpcdist worker would ever start. Launch it as `mpiexec -n N python driver.py` "
    "or `mpiexec -n N python -m hpcdist exec driver.py` (or `hpcdist run -n N driver.py`)"
)


def under_mpi4py_futures() -> bool:
    """Whether ``python -m mpi4py.futures`` runs this program (its ranks > 0 serve a shared pool)."""
    core = sys.modules.get("mpi4py.futures._core")
    return core is not None and getattr(core, "SharedPool", None) is not None
