"""Rendering a job script: a pure function of the spec, the batch system and the run directory.

Every placeholder value is already shell-safe: quoted with :func:`shlex.quote`, or checked
against a strict pattern by the spec, and checked once more by :mod:`hpcdist.batch.values`.
No file is written, no command run, no clock read.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from hpcdist.batch.base import BatchSystem, q, q_value
from hpcdist.batch.values import check_spec
from hpcdist.errors import RenderError
from hpcdist.launch import find_launcher_lines, launch_line, program_command
from hpcdist.exitcodes import ExitCode
from hpcdist.paths import RunDir
from hpcdist.spec.template import JobTemplate, template_problem

if TYPE_CHECKING:
    from hpcdist.spec.model import JobSpec

__all__ = ["render_script", "placeholders", "resubmit_lines"]

WALLTIME = int(ExitCode.WALLTIME)


def placeholders(system: BatchSystem, spec: JobSpec, run_dir: Path) -> dict[str, str]:
    """Every placeholder value for ``spec`` (see :data:`hpcdist.spec.template.PLACEHOLDERS`)."""
    env = spec.environment
    modules = ""
    if env.modules:
        # module scripts often read unset variables: relax nounset around them
        modules = "\n".join(["set +u"] + [f"module load {q(m)}" for m in env.modules] + ["set -u"])
    return {
        "directives": "\n".join(system.directives(spec, run_dir)),
        "job_name": q(spec.name),
        "spec_file": q(spec.path.name),
        "modules": modules,
        "setup": "\n".join(env.setup),
        # the failure detector's bound first: environment.vars may still set it
        "exports": "\n".join([f"export HPCDIST_FAILURE_TIMEOUT={int(spec.failure_timeout)}",
                              f"export HPCDIST_ALLOWED_FAILURES={int(spec.allowed_failures)}",
                              trace_export(spec, run_dir)]
                             + [f"export {k}={q_value(v)}" for k, v in env.vars.items()]),
        "run_dir": q(run_dir),
        "workdir": q(env.workdir),
        "python": q(env.python),
        "find_launcher": find_launcher_lines(spec),
        "launch": launch_line(spec, program_command(spec), system.ranks_word(spec)),
        "warning_timer": system.warning_timer(spec),
        "ranks": str(spec.resources.ranks),
        "grace": str(spec.resources.grace),
        "resubmit": resubmit_lines(spec),
    }


def trace_export(spec: JobSpec, run_dir: Path) -> str:
    """The export that tells every rank where to record its trace (RUN_DIR/trace), or that it records none."""
    if not spec.trace:
        return "export HPCDIST_TRACE=off"
    return f"export HPCDIST_TRACE_DIR={q(RunDir(run_dir).trace)}"


def load_template(system: BatchSystem, spec: JobSpec) -> tuple[str, str]:
    """``(text, name)`` of the spec's own template, or of the system's built-in one."""
    if spec.template is not None:
        try:
            return spec.template.read_text(encoding="utf-8"), str(spec.template)
        except OSError as exc:
            raise RenderError(f"{spec.template}: cannot read the template: {exc}") from None
    name = f"hpcdist.jobscripts/{system.template_name}"
    try:
        return resources.files("hpcdist.jobscripts").joinpath(system.template_name).read_text("utf-8"), name
    except ModuleNotFoundError:
        pass
    # a source checkout used without installing: jobscripts/ sits beside hpcdist/
    here = Path(__file__).resolve().parents[2] / "jobscripts" / system.template_name
    try:
        return here.read_text(encoding="utf-8"), name
    except OSError:
        raise RenderError(f"{name}: built-in template missing (is hpcdist installed correctly?)") from None


def render_script(system: BatchSystem, spec: JobSpec, run_dir: Path) -> str:
    """The job script of ``spec`` for ``system``, writing into ``run_dir``.

    Raises:
        RenderError: when the spec cannot be rendered for this system.
    """
    system.check(spec)
    check_spec(spec, run_dir, system.reserved_options, system.attached_short_values)
    text, origin = load_template(system, spec)
    values = placeholders(system, spec, run_dir)
    problem = template_problem(text, values, origin)
    if problem is not None:
        raise RenderError(problem)
    script = JobTemplate(text).substitute(values)
    # empty placeholders leave runs of blank lines: keep at most one
    script = re.sub(r"\n{3,}", "\n\n", script)
    return script if script.endswith("\n") else script + "\n"


def resubmit_lines(spec: JobSpec) -> str:
    """For a pipeline with ``resubmit: N > 0``: the lines (each ending in a newline) that run
    ``hpcdist submit --resume`` on the run directory when the launcher exited with the
    walltime status; hpcdist counts the resubmissions in ``job.json`` and stops at N.
    Empty for every other spec, so their scripts do not change."""
    parsed = spec.program.parsed
    limit = getattr(parsed, "resubmit", 0) if parsed is not None else 0
    if not limit:
        return ""
    return "\n".join([
        "",
        f"# Stopped at the walltime (status {WALLTIME}): submit this run again with --resume, at most",
        f"# {int(limit)} times in all (program.pipeline.resubmit; hpcdist counts them in job.json).",
        f'if [ "$RC" = {WALLTIME} ]; then',
        '  "$PYTHON" -m hpcdist submit --resume "$HPCDIST_RUN_DIR" --resubmit ||',
        '    echo "hpcdist: not resubmitted; continue with: hpcdist submit --resume $HPCDIST_RUN_DIR" >&2',
        "fi",
        "",
        "",
    ])  # fmt: skip
