"""The job-script template contract: which ``${placeholders}`` a template may use.

A template is a plain shell script with ``${placeholders}``. Only *lowercase* names in
braces are placeholders; ``$VAR``, ``${UPPER_CASE}``, ``$!``, ``$((...))`` are left to the
shell, so templates read as ordinary bash. The spec's ``template`` key is checked against
:data:`PLACEHOLDERS` when the spec is read; :mod:`hpcdist.batch.script` fills them in.
"""

from __future__ import annotations

import string

__all__ = ["PLACEHOLDERS", "JobTemplate", "template_problem"]

#: placeholders every template may use, with what they hold
PLACEHOLDERS = {
    "directives": "the #SBATCH / #$ lines",
    "job_name": "the job name (checked: letters, digits, . _ -; quoted)",
    "spec_file": "the spec file name, quoted",
    "modules": "`module load` lines (empty when there are none)",
    "setup": "the environment.setup lines, verbatim",
    "exports": "`export NAME=value` lines: HPCDIST_FAILURE_TIMEOUT (failure_timeout), HPCDIST_ALLOWED_FAILURES "
               "(allowed_failures), HPCDIST_TRACE_DIR=RUN_DIR/trace or HPCDIST_TRACE=off (trace), then "
               "environment.vars, values quoted",
    "run_dir": "the absolute run directory, quoted",
    "workdir": "the absolute working directory, quoted",
    "python": "the interpreter (command name or absolute path), quoted",
    "find_launcher": "shell lines that locate the launcher (set MPIEXEC, and MPIEXEC_FT for mpiexec; "
                     "empty for srun)",
    "launch": "the launch command line (without the trailing &)",
    "warning_timer": "SGE: a background timer that sends USR1 to the script `grace` seconds before the walltime",
    "ranks": "the number of ranks",
    "grace": "seconds between the warning signal and the walltime",
    "resubmit": "pipelines with program.pipeline.resubmit > 0: lines that submit the run again with --resume "
                "after the walltime status (5); empty otherwise",
}


class JobTemplate(string.Template):
    """string.Template where only ``${lowercase_name}`` is a placeholder."""

    flags = 0  # the default, re.IGNORECASE, would take ${SLURM_NTASKS} for a placeholder

    pattern = r"""
    \$(?:
      (?P<escaped>(?!))            |
      (?P<named>(?!))              |
      {(?P<braced>[a-z][a-z0-9_]*)} |
      (?P<invalid>(?!))
    )
    """  # type: ignore[assignment]


def template_problem(text: str, values: dict[str, str], origin: str) -> str | None:
    """Why ``text`` cannot be filled in with ``values`` (an unknown or bad placeholder), or None."""
    try:
        JobTemplate(text).substitute(values)
    except KeyError as exc:
        return (f"{origin}: unknown placeholder ${{{exc.args[0]}}}; available: "
                + ", ".join(f"${{{k}}}" for k in sorted(values)))
    except ValueError as exc:
        return f"{origin}: bad placeholder: {exc}"
    return None
