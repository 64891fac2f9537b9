"""What every submission starts from: the spec to submit, checked to be submittable."""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from hpcdist.batch import SYSTEMS
from hpcdist.errors import SpecError
from hpcdist.spec.model import JobSpec, load_spec

__all__ = ["spec_with", "require_submittable", "SUBMIT_TIMEOUT"]

#: seconds sbatch / qsub may take
SUBMIT_TIMEOUT = 60.0


def spec_with(spec: Any, scheduler: str | None, overrides: Iterable[str]) -> JobSpec:
    """The :class:`~hpcdist.spec.model.JobSpec` to submit: a spec path loaded with ``overrides`` and
    ``scheduler=``; a JobSpec with its scheduler replaced (re-reading its file would drop
    the overrides it was loaded with, so ``overrides`` need the path)."""
    if not isinstance(spec, JobSpec):
        return load_spec(spec, [*overrides, *([f"scheduler={scheduler}"] if scheduler else [])])
    if list(overrides):
        raise SpecError(f"{spec.source}: overrides apply to a spec file: pass its path, or load_spec(path, overrides)")
    return dataclasses.replace(spec, scheduler=scheduler) if scheduler else spec


def require_submittable(spec: JobSpec, local: str) -> None:
    """Refuse a spec whose ``scheduler`` is no batch system (``local``); ``local`` says how
    to run it without one.

    Raises:
        SpecError: naming the spec.
    """
    if spec.scheduler not in SYSTEMS:
        raise SpecError(
            f"{spec.source}: scheduler: {spec.scheduler!r} cannot be submitted; "
            f"set scheduler: {' or '.join(SYSTEMS)}, or pass --scheduler ({local})"
        )
