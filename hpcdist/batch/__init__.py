"""Rendering job scripts: ``render(spec, system) -> str`` (pure: no file written, no command run).

One class per batch system (:mod:`hpcdist.batch.slurm`, :mod:`hpcdist.batch.sge`) carries
the directives and the argv of the system's commands; :func:`get_system` returns it by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpcdist.errors import RenderError
from hpcdist.batch.base import PLACEHOLDERS, BatchSystem, JobIdError
from hpcdist.batch.sge import GridEngine
from hpcdist.batch.slurm import Slurm

if TYPE_CHECKING:
    from hpcdist.spec.model import JobSpec

__all__ = ["render", "get_system", "BatchSystem", "JobIdError", "Slurm", "GridEngine", "PLACEHOLDERS", "SYSTEMS"]

#: batch systems by name
SYSTEMS: dict[str, type[BatchSystem]] = {"slurm": Slurm, "sge": GridEngine}


def get_system(name: str) -> BatchSystem:
    """The batch system called ``name`` (slurm or sge).

    Raises:
        RenderError: for an unknown name or ``local`` (which has no job script).
    """
    cls = SYSTEMS.get(name)
    if cls is None:
        if name == "local":
            raise RenderError("scheduler local has no job script; use --scheduler slurm or sge (or `hpcdist run`)")
        raise RenderError(f"unknown batch system {name!r}; choose one of: {', '.join(SYSTEMS)}")
    return cls()


def render(spec: JobSpec, system: str | None = None, *, timestamp: str | None = None) -> str:
    """The job script of ``spec`` for ``system``.

    Args:
        spec: a validated spec.
        system: slurm or sge (default: ``spec.scheduler``).
        timestamp: fills ``{timestamp}`` in the run directory (default: now); pass the same
            value to :meth:`JobSpec.run_dir` to know where the job will write.

    Returns:
        The script text.

    Raises:
        RenderError: when the spec cannot be rendered for this system.
    """
    return get_system(system or spec.scheduler).render(spec, spec.run_dir(timestamp))
