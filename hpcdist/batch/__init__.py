"""Batch systems: rendering job scripts and asking where jobs are.

One :class:`~hpcdist.batch.base.BatchSystem` subclass per system (:mod:`hpcdist.batch.slurm`,
:mod:`hpcdist.batch.sge`), registered by name in :data:`SYSTEMS`; :func:`get_system` returns
it. :func:`render` is pure (no file written, no command run, no clock read); the caller picks
the run directory. Submitting and following jobs: :mod:`hpcdist.batch.submission` and
:mod:`hpcdist.batch.jobs`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hpcdist.batch.base import FINAL_STATES, STATES, BatchSystem, JobStatus
from hpcdist.batch.script import render_script
from hpcdist.batch.sge import GridEngine
from hpcdist.batch.slurm import Slurm
from hpcdist.errors import CommandError, RenderError

if TYPE_CHECKING:
    from hpcdist.spec.model import JobSpec

__all__ = ["render", "get_system", "query_states", "BatchSystem", "JobStatus", "Slurm",
           "GridEngine", "SYSTEMS", "STATES", "FINAL_STATES"]

#: batch systems by name: one line per system
SYSTEMS: dict[str, type[BatchSystem]] = {
    Slurm.name: Slurm,
    GridEngine.name: GridEngine,
}


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


def render(spec: JobSpec, system: str | None, run_dir: Path) -> str:
    """The job script of ``spec`` for ``system``.

    Args:
        spec: a validated spec.
        system: slurm or sge (None: ``spec.scheduler``).
        run_dir: where the job writes (the caller picks it, e.g. ``spec.run_dir(timestamp)``).

    Returns:
        The script text.

    Raises:
        RenderError: when the spec cannot be rendered for this system.
    """
    return render_script(get_system(system or spec.scheduler), spec, Path(run_dir))


def query_states(
    system: str, job_ids: list[str], timeout: float = 30.0, submitted: dict[str, float] | None = None
) -> dict[str, JobStatus]:
    """The status of every job in ``job_ids``: one queue query, and one accounting lookup for
    the jobs missing from it (see each system's :meth:`~hpcdist.batch.base.BatchSystem.query`).

    Raises:
        JobIdError: when an id is not in the system's syntax (nothing is run then).
        CommandError: when a batch command fails (its own message included).
    """
    if system not in SYSTEMS:
        raise CommandError(f"unknown batch system {system!r}; expected {' or '.join(SYSTEMS)}")
    checker = get_system(system)
    job_ids = [checker.check_job_id(j) for j in dict.fromkeys(job_ids)]
    if not job_ids:
        return {}
    return checker.query(job_ids, timeout, submitted or {})
