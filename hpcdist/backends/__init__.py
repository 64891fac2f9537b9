"""Execution backends: a name -> factory registry and one alias table.

A backend is a way to start a world of workers around the driver. Adding one takes one
module with a ``start(n_workers) -> World`` function and one :data:`REGISTRY` entry.
Nothing here imports a backend's module until that backend is started, so
``import hpcdist`` never initialises MPI.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from hpcdist.errors import HpcdistError


@dataclass(frozen=True)
class Backend:
    """One registered backend.

    Attributes:
        name: canonical name.
        factory: ``"module:function"``; the function takes the worker count (``None`` =
            the backend's default) and returns a started :class:`~hpcdist.runtime.world.World`.
        summary: one line for ``hpcdist doctor`` and error messages.
        uses_worker_count: whether the ``workers`` argument means anything here (the mpi
            world's size is fixed by the launcher; ``local`` always runs inline).
    """

    name: str
    factory: str
    summary: str
    uses_worker_count: bool = True

    def load(self) -> Callable[[int | None], Any]:
        """Import the backend's module and return its start function."""
        module, _, attr = self.factory.partition(":")
        return getattr(importlib.import_module(module), attr)

    def start(self, n_workers: int | None = None) -> Any:
        """Start a world on this backend (see :attr:`factory`)."""
        return self.load()(n_workers)


#: canonical name -> backend, in the order ``doctor`` reports them
REGISTRY: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("local", "hpcdist.backends.local:start", "every call runs inline in the caller (debugging)", False),
        Backend("thread", "hpcdist.backends.thread:start", "worker threads in this process"),
        Backend("process", "hpcdist.backends.process:start", "worker processes on this machine, over pipes"),
        Backend("mpi", "hpcdist.backends.mpi:start", "the MPI world: rank 0 drives, ranks 1..N-1 work", False),
    )
}

#: other accepted names (matched case-insensitively) -> canonical name
ALIASES: dict[str, str] = {
    "sync": "local",
    "inline": "local",
    "serial": "local",
    "direct": "local",
    "threads": "thread",
    "threaded": "thread",
    "processes": "process",
    "mp": "process",
    "multiprocessing": "process",
    "spawn": "process",
    "mpirun": "mpi",
    "mpiexec": "mpi",
    "cluster": "mpi",
}


def canonical_name(name: str, source: str = "backend") -> str:
    """The canonical backend name for ``name`` or one of its aliases (any case).

    Args:
        name: a backend name or alias.
        source: where the name came from, for the error message (e.g. ``HPCDIST_BACKEND``).

    Raises:
        HpcdistError: unknown name; the message lists every valid name and alias.
    """
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key not in REGISTRY:
        raise HpcdistError(f"unknown backend {name!r} (from {source}); {valid_names()}")
    return key


def valid_names() -> str:
    """``"valid: local, thread, ...; aliases: sync -> local, ..."`` for error messages."""
    aliases = ", ".join(f"{a} -> {c}" for a, c in ALIASES.items())
    return f"valid: {', '.join(REGISTRY)}; aliases: {aliases}"


def get_backend(name: str) -> Backend:
    """The registered backend called ``name`` (or one of its aliases, any case).

    Raises:
        HpcdistError: unknown name; the message lists every valid name and alias.
    """
    return REGISTRY[canonical_name(name)]


__all__ = ["ALIASES", "REGISTRY", "Backend", "canonical_name", "get_backend", "valid_names"]
