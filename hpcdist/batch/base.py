"""What every batch system shares: the template mechanics, the placeholders, the launch line.

A template is a plain shell script with ``${placeholders}``. Only *lowercase* names in
braces are placeholders; ``$VAR``, ``${UPPER_CASE}``, ``$!``, ``$((...))`` are left to the
shell, so templates read as ordinary bash. Every placeholder value is already shell-safe:
quoted with :func:`shlex.quote`, or checked against a strict pattern by the spec.
"""

from __future__ import annotations

import re
import shlex
import string
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from hpcdist.errors import JobIdError, RenderError
from hpcdist.exitcodes import ExitCode
from hpcdist.batch.values import check_spec
from hpcdist.spec.keys import DIRECTIVE_PATH_PATTERN

if TYPE_CHECKING:
    from hpcdist.spec.model import JobSpec

# characters allowed in a path that appears in a batch directive: the spec's rule (validation
# checks the run directory with it too)
_DIRECTIVE_PATH = re.compile(DIRECTIVE_PATH_PATTERN)

#: placeholders every template may use, with what they hold
PLACEHOLDERS = {
    "directives": "the #SBATCH / #$ lines",
    "job_name": "the job name (checked: letters, digits, . _ -; quoted)",
    "spec_file": "the spec file name, quoted",
    "modules": "`module load` lines (empty when there are none)",
    "setup": "the environment.setup lines, verbatim",
    "exports": "`export NAME=value` lines for environment.vars, values quoted",
    "run_dir": "the absolute run directory, quoted",
    "workdir": "the absolute working directory, quoted",
    "python": "the interpreter (command name or absolute path), quoted",
    "find_launcher": "shell lines that locate the launcher (sets MPIEXEC; empty for srun)",
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


def q(value: object) -> str:
    """Shell-quote one word."""
    return shlex.quote(str(value))


def q_value(value: object) -> str:
    """Shell-quote the value of an assignment: like :func:`q`, but ``=`` is quoted too
    (``X==`` is valid bash, yet reads like a typo to readers and shellcheck)."""
    text = str(value)
    return q(text) if "=" not in text or q(text) != text else "'" + text + "'"


class BatchSystem:
    """One batch system: how to render its script and the argv of its commands.

    Subclasses set :attr:`name` and :attr:`template_name` and implement
    :meth:`directives`, :meth:`launch` and the command builders.
    """

    name: ClassVar[str] = ""
    template_name: ClassVar[str] = ""
    directive_prefix: ClassVar[str] = "#"

    # -- commands (pure; the caller runs them through hpcdist.commands.run_command) --------

    def submit_argv(self, script_path: str | Path) -> list[str]:
        """The command that submits ``script_path`` and prints only the job id."""
        raise NotImplementedError

    def parse_job_id(self, stdout: str) -> str:
        """The job id in the output of :meth:`submit_argv`."""
        raise NotImplementedError

    def cancel_argv(self, job_id: str) -> list[str]:
        """The command that cancels ``job_id``."""
        raise NotImplementedError

    #: a job id of this system, in full (digits and the system's array/task suffixes)
    job_id_pattern: ClassVar[str] = r"\d+"
    #: the batch output file in the run directory, ``{id}`` for the job id
    output_name: ClassVar[str] = "{id}.out"

    def check_job_id(self, job_id: object, origin: str = "job id") -> str:
        """``job_id`` as text when it is in this system's id syntax (so never an option).

        Args:
            job_id: the id to check (from the command line, job.json, or sbatch/qsub output).
            origin: where it came from, for the message.

        Raises:
            JobIdError: naming ``origin``.
        """
        if not isinstance(job_id, str) or len(job_id) > 40 or not re.fullmatch(self.job_id_pattern, job_id):
            shown = repr(job_id)[:60]
            raise JobIdError(f"{origin}: {shown} is not a {self.name} job id ({self.job_id_help})")
        return job_id

    job_id_help: ClassVar[str] = "digits"

    def output_file(self, run_dir: Path, job_id: str) -> Path:
        """Where the job's standard output (and error) goes."""
        return run_dir / self.output_name.format(id=job_id)

    # -- rendering -----------------------------------------------------------------------

    def directives(self, spec: JobSpec, run_dir: Path | None = None) -> list[str]:
        """The batch directive lines (``#SBATCH ...`` / ``#$ ...``) for ``spec``.

        Args:
            spec: a validated spec.
            run_dir: where the batch output goes (default: ``spec.run_dir()`` for now).
        """
        raise NotImplementedError

    def launch(self, spec: JobSpec) -> tuple[str, str]:
        """``(find_launcher, launch)``: lines locating the launcher, and the launch command."""
        raise NotImplementedError

    def warning_timer(self, spec: JobSpec) -> str:
        """Shell lines that arrange the walltime warning inside the script (default: none)."""
        return ""

    def check(self, spec: JobSpec) -> None:
        """Raise :class:`RenderError` for specs this system cannot run (the rules live in
        :func:`hpcdist.spec.model.system_rules`, which validation applies too)."""
        problems = spec.system_problems(self.name)
        if problems:
            raise RenderError(f"{spec.source}: " + f"\n{spec.source}: ".join(problems))

    def placeholders(self, spec: JobSpec, run_dir: Path) -> dict[str, str]:
        """Every placeholder value for ``spec`` (see :data:`PLACEHOLDERS`)."""
        env = spec.environment
        find_launcher, launch = self.launch(spec)
        modules = ""
        if env.modules:
            # module scripts often read unset variables: relax nounset around them
            modules = "\n".join(["set +u"] + [f"module load {q(m)}" for m in env.modules] + ["set -u"])
        return {
            "directives": "\n".join(self.directives(spec, run_dir)),
            "job_name": q(spec.name),
            "spec_file": q(spec.path.name),
            "modules": modules,
            "setup": "\n".join(env.setup),
            "exports": "\n".join(f"export {k}={q_value(v)}" for k, v in env.vars.items()),
            "run_dir": q(run_dir),
            "workdir": q(env.workdir),
            "python": q(env.python),
            "find_launcher": find_launcher,
            "launch": launch,
            "warning_timer": self.warning_timer(spec),
            "ranks": str(spec.resources.ranks),
            "grace": str(spec.resources.grace),
            "resubmit": resubmit_lines(spec),
        }

    def load_template(self, spec: JobSpec) -> tuple[str, str]:
        """``(text, name)`` of the spec's own template, or of the built-in one."""
        if spec.template is not None:
            try:
                return spec.template.read_text(encoding="utf-8"), str(spec.template)
            except OSError as exc:
                raise RenderError(f"{spec.template}: cannot read the template: {exc}") from None
        name = f"hpcdist.jobscripts/{self.template_name}"
        try:
            return resources.files("hpcdist.jobscripts").joinpath(self.template_name).read_text("utf-8"), name
        except ModuleNotFoundError:
            pass
        # a source checkout used without installing: jobscripts/ sits beside hpcdist/
        here = Path(__file__).resolve().parents[2] / "jobscripts" / self.template_name
        try:
            return here.read_text(encoding="utf-8"), name
        except OSError:
            raise RenderError(f"{name}: built-in template missing (is hpcdist installed correctly?)") from None

    def render(self, spec: JobSpec, run_dir: Path) -> str:
        """The job script for ``spec`` writing into ``run_dir``."""
        self.check(spec)
        check_spec(spec, self.name, run_dir)
        text, origin = self.load_template(spec)
        values = self.placeholders(spec, run_dir)
        try:
            script = JobTemplate(text).substitute(values)
        except KeyError as exc:
            raise RenderError(
                f"{origin}: unknown placeholder ${{{exc.args[0]}}}; available: "
                + ", ".join(f"${{{k}}}" for k in sorted(values))
            ) from None
        except ValueError as exc:
            raise RenderError(f"{origin}: bad placeholder: {exc}") from None
        # empty placeholders leave runs of blank lines: keep at most one
        script = re.sub(r"\n{3,}", "\n\n", script)
        return script if script.endswith("\n") else script + "\n"


def directive_path(path: Path, what: str, forbidden: str = "") -> str:
    """``path`` as text for a batch directive, refused when it holds characters the batch
    system's directive parser could misread (spaces, quotes, $, ...) or ``forbidden`` ones."""
    text = str(path)
    bad = next((c for c in forbidden if c in text), None)
    if not _DIRECTIVE_PATH.fullmatch(text) or bad:
        allowed = "".join(c for c in "_./+@%:,=-" if c not in forbidden)
        raise RenderError(
            f"{what} {text!r} contains characters that cannot appear in a batch directive "
            f"(allowed: letters, digits and {' '.join(allowed)}); choose another output directory"
        )
    return text


def python_command(spec: JobSpec) -> str:
    """``"$PYTHON" -m hpcdist exec SCRIPT ARGS...`` with every word quoted; for a pipeline
    ``"$PYTHON" -m hpcdist run SPEC --run-dir "$HPCDIST_RUN_DIR"`` (inside the world, rank 0
    runs the pipeline; the resolved spec that ``hpcdist submit`` wrote into the run directory
    takes precedence over SPEC)."""
    program = spec.program
    if program.script is None:
        return f'"$PYTHON" -m hpcdist run {q(spec.path)} --run-dir "$HPCDIST_RUN_DIR"'
    words = [q(program.script)] + [q(a) for a in program.args]
    return '"$PYTHON" -m hpcdist exec ' + " ".join(words)


def resubmit_lines(spec: JobSpec) -> str:
    """For a pipeline with ``resubmit: N > 0``: the lines (each ending in a newline) that run
    ``hpcdist submit --resume`` on the run directory when the launcher exited with the
    walltime status; hpcdist counts the resubmissions in ``job.json`` and stops at N.
    Empty for every other spec, so their scripts do not change."""
    parsed = spec.program.parsed
    limit = getattr(parsed, "resubmit", 0) if parsed is not None else 0
    if not limit:
        return ""
    WALLTIME = ExitCode.WALLTIME

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


def find_mpiexec_lines() -> str:
    """Shell lines that set MPIEXEC: the mpiexec beside the interpreter first (the PyPI
    mpich wheel installs it there), else the first one on PATH."""
    return "\n".join([
        'MPIEXEC="$(dirname "$PYTHON")/mpiexec"',
        'if [ ! -x "$MPIEXEC" ]; then',
        '  MPIEXEC=$(command -v mpiexec) || { echo "hpcdist: mpiexec not found" >&2; exit 127; }',
        "fi",
    ])  # fmt: skip
