"""hpcdist: thousands of Python tasks in one HPC allocation, with MPI as the only transport.

The public API. Names are imported lazily so ``import hpcdist`` stays cheap and never
initialises MPI by itself.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Client": "hpcdist.runtime.client",
    "Future": "hpcdist.runtime.futures",
    "as_completed": "hpcdist.runtime.waiting",
    "wait": "hpcdist.runtime.waiting",
    "load_spec": "hpcdist.spec.model",
    "submit": "hpcdist.batch.submission",
    "get_backend": "hpcdist.backends",
}

__all__ = ["Client", "Future", "as_completed", "wait", "load_spec", "submit", "get_backend", "__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hpcdist' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
