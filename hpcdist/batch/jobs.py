"""Submitting a job spec to a batch system and following the job: submit, status, cancel, wait.

A submission makes a *run directory* holding the rendered script (``job.sh``), the resolved
spec (``spec.yaml``) and the job record (``job.json``); the job writes its output there. The
directory is built under a temporary sibling name and renamed into place only after the
batch system accepted the job, so a rejected submission leaves nothing behind.

Every batch command goes through :func:`hpcdist.commands.run_command`. The state of a job is
read with one batched queue query per poll (``squeue`` / ``qstat``); only a job that has
left the queue is looked up in the accounting (``sacct``, else SLURM's jobcomp file;
``qacct``). States are normalised to :data:`STATES`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from hpcdist import commands
from hpcdist.errors import CommandError, HpcdistError, NothingCancelled, RunDirError, SpecError, SubmitError
from hpcdist.exitcodes import ExitCode
from hpcdist.batch.query import FINAL_STATES, STATES, JobStatus, query_states
from hpcdist.spec.keys import MEMORY_UNITS

__all__ = [
    "Job",
    "JobStatus",
    "RunDirError",
    "STATES",
    "FINAL_STATES",
    "EXIT_CODES",
    "submit",
    "resolve_job",
    "exit_code_for",
    "statuses",
    "combined_exit_code",
    "NothingCancelled",
    "read_record",
    "read_progress",
]

#: ``hpcdist status`` exit codes by state (and, as for every command, 2 usage, 3 batch command failed)
EXIT_CODES: Mapping[str, ExitCode] = {
    "COMPLETED": ExitCode.OK,
    "FAILED": ExitCode.FAILED,
    "CANCELLED": ExitCode.FAILED,
    "TIMEOUT": ExitCode.FAILED,
    "UNKNOWN": ExitCode.UNKNOWN,
    "PENDING": ExitCode.UNFINISHED,
    "RUNNING": ExitCode.UNFINISHED,
}

JOB_FILE = "job.json"
SCRIPT_FILE = "job.sh"
SPEC_FILE = "spec.yaml"
PROGRESS_FILE = "progress.json"
SUBMIT_TIMEOUT = 60.0
QUERY_TIMEOUT = 30.0


def exit_code_for(state: str) -> ExitCode:
    """The ``hpcdist status`` exit code for a normalised state (see :data:`EXIT_CODES`)."""
    return EXIT_CODES.get(state, EXIT_CODES["UNKNOWN"])


def combined_exit_code(states: Iterable[str]) -> ExitCode:
    """The ``hpcdist status`` exit code for several jobs: 10 when any is unfinished, else 1
    when any failed, else 4 when any is unknown, else 0 (all completed)."""
    codes = {exit_code_for(s) for s in states}
    for code in (ExitCode.UNFINISHED, ExitCode.FAILED, ExitCode.UNKNOWN):
        if code in codes:
            return code
    return ExitCode.OK


@dataclass
class Job:
    """A submitted (or dry-run) job and its run directory.

    Attributes:
        job_id: the batch system's id (None for a dry run).
        system: ``slurm`` or ``sge``.
        run_dir: the run directory (None when the job was named by id alone).
        submitted: submission time (seconds since the epoch), if known.
        script: path of the rendered job script, if known.
    """

    job_id: str | None
    system: str
    run_dir: Path | None = None
    submitted: float | None = None
    script: Path | None = None
    record: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_run_dir(cls, path: str | os.PathLike[str]) -> Job:
        """The job recorded in a run directory's ``job.json``.

        Raises:
            RunDirError: when the directory or its record is missing, unreadable or malformed
                (bad JSON, wrong types, a job id not in the system's syntax...).
        """
        run_dir = Path(path).resolve()
        if not run_dir.is_dir():
            raise RunDirError(f"{path}: no such run directory")
        record = read_record(run_dir / JOB_FILE, missing=f"{path}: not a run directory (no {JOB_FILE}; "
                                                           "made by `hpcdist submit`)")
        return cls(
            job_id=record.get("job_id"),
            system=record["system"],
            run_dir=run_dir,
            submitted=record.get("submitted"),
            script=Path(record["script"]) if record.get("script") else None,
            record=record,
        )

    def output_file(self) -> Path | None:
        """Where the batch system writes the job's output (None without a run directory or id)."""
        if self.run_dir is None or self.job_id is None:
            return None
        from hpcdist.batch import get_system

        return get_system(self.system).output_file(self.run_dir, self.job_id)

    @property
    def dry_run(self) -> bool:
        """True when the job was rendered but never submitted."""
        return self.job_id is None

    def _require_id(self, what: str) -> str:
        if self.job_id is None:
            raise RunDirError(f"{self.run_dir}: a dry run was never submitted; nothing to {what}")
        return self.job_id

    def progress(self) -> dict[str, Any] | None:
        """The run's progress (``progress.json`` in the run directory) when it is complete:
        ``{"done", "failed", "running", "total": int, "updated": ISO 8601 text}``; else None
        (no file yet, or one that is partial or malformed)."""
        if self.run_dir is None:
            return None
        return read_progress(self.run_dir / PROGRESS_FILE)

    def status(self) -> JobStatus:
        """The job's state now (one queue query; accounting only once it left the queue).

        Raises:
            CommandError: when the batch system's command fails.
        """
        return statuses([self])[0]

    def _follow(self) -> None:
        # a run continued by `submit --resume` (or a job that resubmitted itself) names its
        # newest job in job.json: follow it
        if self.run_dir is None:
            return
        try:
            newest = Job.from_run_dir(self.run_dir)
        except RunDirError:
            return
        if newest.job_id is not None and newest.job_id != self.job_id:
            self.job_id, self.system, self.submitted = newest.job_id, newest.system, newest.submitted
            self.script, self.record = newest.script, newest.record

    def cancel(self) -> None:
        """Ask the batch system to cancel the job (and note the request in ``job.json``).

        The request is noted first, so a job script that reacts to the cancellation (Grid
        Engine's -notify signal looks like the walltime warning) does not resubmit itself.

        Raises:
            NothingCancelled: the batch system knows no such job, or it had already ended.
            CommandError: with the batch system's own message when it refuses.
        """
        from hpcdist.batch import get_system

        self._follow()
        job_id = self._require_id("cancel")
        argv = get_system(self.system).cancel_argv(job_id)  # checks the id's syntax first
        noted = self.run_dir is not None and (self.run_dir / JOB_FILE).exists()
        if noted:
            assert self.run_dir is not None
            self.record["cancel_requested"] = time.time()
            _write_json(self.run_dir / JOB_FILE, self.record)
        try:
            result = commands.run_command(argv, timeout=QUERY_TIMEOUT, check=False)
            problem = _cancel_problem(self.system, result)
            if problem is not None:
                raise problem
        except BaseException:
            if noted:
                assert self.run_dir is not None
                self.record.pop("cancel_requested", None)
                _write_json(self.run_dir / JOB_FILE, self.record)
            raise

    def wait(
        self, timeout: float | None = None, poll: float = 0.5, max_poll: float = 10.0, unknown_grace: float = 30.0
    ) -> JobStatus:
        """Poll until the job reaches a final state, backing off from ``poll`` to ``max_poll`` s.

        Args:
            timeout: give up after this many seconds (None: wait for ever).
            poll: first polling interval in seconds; it grows by half each poll.
            max_poll: longest polling interval.
            unknown_grace: how long a job may stay UNKNOWN (gone from the queue, no
                accounting record yet) before that is returned as its final answer.

        Returns:
            The final status (or UNKNOWN after ``unknown_grace``).

        Raises:
            TimeoutError: when ``timeout`` passes first.
        """
        start = time.monotonic()
        unknown_since: float | None = None
        interval = poll
        while True:
            st = self.status()
            now = time.monotonic()
            if st.state in FINAL_STATES:
                return st
            if st.state == "UNKNOWN":
                unknown_since = now if unknown_since is None else unknown_since
                if now - unknown_since >= unknown_grace:
                    return st
            else:
                unknown_since = None
            if timeout is not None and now - start + interval > timeout:
                raise TimeoutError(f"job {self.job_id} still {st.state} after {timeout:g} s")
            time.sleep(interval)
            interval = min(interval * 1.5, max(max_poll, poll))


def _read_exit_code(run_dir: Path) -> int | None:
    # the rendered scripts write the launcher's exit status there
    try:
        return int((run_dir / "exit_code").read_text().strip())
    except (OSError, ValueError):
        return None


def _cancel_problem(system: str, result: commands.CommandResult) -> HpcdistError | None:
    # scancel exits 0 for an unknown or finished job; with -v it says so on stderr
    text = (result.stderr + "\n" + result.stdout).strip()
    gone = ("Invalid job id", "already completing or completed", "does not exist", "not found")
    if any(g in text for g in gone):
        lines = [ln.strip() for ln in text.splitlines() if "error" in ln.lower() or "denied" in ln.lower()]
        detail = " / ".join(lines[-3:]) or result.tail()
        return NothingCancelled(f"nothing cancelled: {detail}")
    if result.returncode != 0:
        return CommandError(f"{result.argv[0]} failed (exit {result.returncode}): {result.tail()}")
    if system == "slurm" and re.search(r"^scancel: error:", text, re.M):
        return CommandError(f"scancel: {result.tail()}")
    return None


def statuses(job_list: list[Job]) -> list[JobStatus]:
    """The status of every job: one queue query (and one accounting lookup) per batch system.

    Raises:
        CommandError: when a batch command fails.
    """
    by_system: dict[str, list[str]] = {}
    submitted: dict[str, float] = {}
    for job in job_list:
        job._follow()
        job_id = job._require_id("query")
        by_system.setdefault(job.system, []).append(job_id)
        if isinstance(job.submitted, (int, float)):
            submitted[job_id] = min(job.submitted, submitted.get(job_id, job.submitted))
    answers = {system: query_states(system, ids, timeout=QUERY_TIMEOUT, submitted=submitted)
               for system, ids in by_system.items()}
    out = []
    for job in job_list:
        assert job.job_id is not None
        st = dataclasses.replace(answers[job.system][job.job_id])
        if st.state in ("UNKNOWN", "FAILED") and job.record.get("cancel_requested"):
            # a cancelled job that never started has no accounting record, and one that
            # handled the warning signal may end with its own non-zero status
            st.state, st.reason = "CANCELLED", st.reason or "cancelled with hpcdist cancel"
        if st.exit_code is None and st.state in FINAL_STATES and job.run_dir is not None:
            st.exit_code = _read_exit_code(job.run_dir)
        st.progress = job.progress()
        out.append(st)
    return out


#: the keys of progress.json and their types
PROGRESS_KEYS = {"done": int, "failed": int, "running": int, "total": int, "updated": str}


def read_progress(path: Path) -> dict[str, Any] | None:
    """``progress.json`` when complete and well formed, else None (see :meth:`Job.progress`)."""
    try:
        if path.stat().st_size > 64 << 10:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    for key, kind in PROGRESS_KEYS.items():
        value = data.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            return None
    return {k: data[k] for k in PROGRESS_KEYS}


MAX_RECORD_BYTES = 1 << 20


def read_record(path: Path, missing: str | None = None) -> dict[str, Any]:
    """A ``job.json`` read and checked: every field hpcdist reads has its type, every job id
    is in its system's syntax (a tampered ``"job_id": "--me"`` never reaches scancel).

    Args:
        path: the job.json file.
        missing: the message when the file does not exist (default: a generic one).

    Raises:
        RunDirError: one line naming the file and the key.
    """
    from hpcdist.batch import JobIdError, get_system

    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_RECORD_BYTES + 1)
    except FileNotFoundError:
        raise RunDirError(missing or f"{path}: no such job record") from None
    except OSError as exc:
        raise RunDirError(f"{path}: cannot read the job record: {exc.strerror or exc}") from None
    if len(raw) > MAX_RECORD_BYTES:
        raise RunDirError(f"{path}: larger than {MAX_RECORD_BYTES} bytes; not a job record made by hpcdist")
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RunDirError(f"{path}: not valid JSON ({str(exc).splitlines()[0][:120]})") from None
    except RecursionError:
        raise RunDirError(f"{path}: nested too deeply; not a job record made by hpcdist") from None
    if not isinstance(record, dict):
        raise RunDirError(f"{path}: not a job record (expected an object with system, job_id, submitted, script)")
    system = record.get("system")
    if system not in ("slurm", "sge"):
        raise RunDirError(f"{path}: system: expected \"slurm\" or \"sge\", got {str(system)[:40]!r}")
    checker = get_system(system)

    def check(entry: dict[str, Any], where: str) -> None:
        for key, kinds in (("submitted", (int, float)), ("script", (str,)), ("cancel_requested", (int, float))):
            value = entry.get(key)
            if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
                raise RunDirError(f"{path}: {where}{key}: wrong type ({type(value).__name__})")
        job_id = entry.get("job_id")
        if "job_id" not in entry and not entry.get("dry_run"):
            raise RunDirError(f"{path}: {where}job_id: missing (expected the batch system's job id)")
        if job_id is not None:
            try:
                checker.check_job_id(job_id, f"{path}: {where}job_id")
            except JobIdError as exc:
                raise RunDirError(str(exc)) from None

    check(record, "")
    history = record.get("jobs")
    if history is not None:
        if not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
            raise RunDirError(f"{path}: jobs: expected a list of job entries")
        for i, entry in enumerate(history):
            check(entry, f"jobs[{i}].")
    resubmits = record.get("resubmits", 0)
    if not isinstance(resubmits, int) or isinstance(resubmits, bool) or resubmits < 0:
        raise RunDirError(f"{path}: resubmits: expected a whole number, got {str(resubmits)[:40]!r}")
    return record


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# --- submission -------------------------------------------------------------------------


def submit(
    spec: Any,
    dry_run: bool = False,
    *,
    scheduler: str | None = None,
    overrides: Iterable[str] = (),
    resume: str | os.PathLike[str] | None = None,
    automatic: bool = False,
) -> Job:
    """Validate, render and submit a job spec; make its run directory (or continue one).

    Args:
        spec: a :class:`~hpcdist.spec.model.JobSpec`, or the path of a spec file; with ``resume``
            also None: the run directory's own resolved ``spec.yaml``.
        dry_run: do everything but submit (the run directory is made, ``job_id`` is None).
        scheduler: ``slurm`` or ``sge`` instead of the spec's own ``scheduler``.
        overrides: ``key.path=value`` settings applied to the spec file (spec paths only).
        resume: an existing pipeline run directory: submit a job that continues the pipeline
            there, reusing its results (see :mod:`hpcdist.batch.resume`); no new directory.
        automatic: with ``resume``: the job script resubmitting itself after the walltime
            status, counted against ``program.pipeline.resubmit``.

    Returns:
        The submitted job, with :attr:`Job.run_dir` in place.

    Raises:
        SpecError: the spec is invalid (nothing is submitted).
        RenderError: the spec cannot be rendered for its batch system.
        SubmitError: the batch system rejected the job; the message is its own.
        RunDirError: ``resume`` is not a pipeline run directory, or its newest job still runs.
    """
    from hpcdist.batch import get_system, render

    if resume is not None:
        if dry_run:
            raise RunDirError("--dry-run and --resume cannot be combined; see the script with hpcdist render SPEC")
        from hpcdist.batch.resume import submit_resume

        return submit_resume(spec, resume, scheduler=scheduler, overrides=overrides, automatic=automatic)
    if automatic:
        raise RunDirError("an automatic resubmission needs the run directory to resume")
    if spec is None:
        raise SpecError("no job spec given (hpcdist submit SPEC)")
    spec = spec_with(spec, scheduler, overrides)
    if spec.scheduler not in ("slurm", "sge"):
        raise SpecError(
            f"{spec.source}: scheduler: {spec.scheduler!r} cannot be submitted; "
            "set scheduler: slurm or sge, or pass --scheduler (to run locally: hpcdist run)"
        )
    system = get_system(spec.scheduler)
    timestamp = _free_timestamp(spec)
    run_dir = spec.run_dir(timestamp)
    script_text = render(spec, spec.scheduler, timestamp=timestamp)

    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", suffix=".partial", dir=run_dir.parent))
    record: dict[str, Any] = {}
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; a run directory is not
        tmp_script = tmp / SCRIPT_FILE
        tmp_script.write_text(script_text, encoding="utf-8")
        tmp_script.chmod(0o755)
        (tmp / SPEC_FILE).write_text(spec_to_yaml(spec), encoding="utf-8")
        record = {
            "system": spec.scheduler,
            "job_id": None,
            "submitted": None,
            "script": str(run_dir / SCRIPT_FILE),
            "spec": str(spec.path),
            "name": spec.name,
        }
        if dry_run:
            record["dry_run"] = True
        else:
            record["job_id"] = submit_script(system, tmp_script)
            record["submitted"] = time.time()
        _write_json(tmp / JOB_FILE, record)
        os.rename(tmp, run_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if record.get("job_id") is not None and not isinstance(exc, KeyboardInterrupt):
            raise SubmitError(
                f"job {record['job_id']} was submitted but its run directory {run_dir} could not be "
                f"put in place ({exc}); cancel it with: hpcdist cancel {record['job_id']} --scheduler {spec.scheduler}"
            ) from exc
        raise
    return Job.from_run_dir(run_dir)


def spec_with(spec: Any, scheduler: str | None, overrides: Iterable[str]) -> Any:
    """The :class:`~hpcdist.spec.model.JobSpec` to submit: a spec path loaded with ``overrides`` and
    ``scheduler=``; a JobSpec with its scheduler replaced (re-reading its file would drop
    the overrides it was loaded with, so ``overrides`` need the path)."""
    from hpcdist.spec.model import JobSpec, load_spec

    if not isinstance(spec, JobSpec):
        return load_spec(spec, [*overrides, *([f"scheduler={scheduler}"] if scheduler else [])])
    if list(overrides):
        raise SpecError(f"{spec.source}: overrides apply to a spec file: pass its path, or load_spec(path, overrides)")
    return dataclasses.replace(spec, scheduler=scheduler) if scheduler else spec


def submit_script(system: Any, script: Path, env: Mapping[str, str] | None = None) -> str:
    """Submit ``script`` with ``system`` (a :class:`~hpcdist.batch.BatchSystem`); the job id.

    Raises:
        SubmitError: the batch system rejected the job; the message is its own.
    """
    argv = system.submit_argv(script)
    result = commands.run_command(argv, timeout=SUBMIT_TIMEOUT, check=False, env=env)
    if result.returncode != 0:
        raise SubmitError(f"{argv[0]} rejected the job (exit {result.returncode}): {result.tail()}")
    return system.parse_job_id(result.stdout)


def _free_timestamp(spec: Any) -> str:
    """A timestamp whose run directory does not exist yet (suffix -2, -3, ... on a clash)."""
    from hpcdist.spec.model import TIMESTAMP_FORMAT

    base = time.strftime(TIMESTAMP_FORMAT)
    stamp, n = base, 1
    while spec.run_dir(stamp).exists():
        n += 1
        stamp = f"{base}-{n}"
        if n > 1000:
            raise SubmitError(f"{spec.run_dir(base)}: run directory exists; change `output` in {spec.source}")
    return stamp


def spec_to_yaml(spec: Any) -> str:
    """The resolved spec (overrides applied, paths absolute) as YAML that load_spec reads back."""
    r, env, prog = spec.resources, spec.environment, spec.program
    resources: dict[str, Any] = {}
    for name in r.__dataclass_fields__:
        value = getattr(r, name)
        if value is None:
            continue
        if name == "walltime":
            hours, rest = divmod(value, 3600)
            value = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
        elif name == "memory":
            value = _memory_text(value)
        elif isinstance(value, tuple):
            value = list(value)
        resources[name] = value
    program: dict[str, Any] = {}
    if prog.script is not None:
        program["script"] = shlex.join([str(prog.script), *prog.args])
    else:
        program["pipeline"] = dict(prog.pipeline or {})
    data: dict[str, Any] = {
        "name": spec.name,
        "scheduler": spec.scheduler,
        "resources": resources,
        "environment": {
            "modules": list(env.modules),
            "setup": list(env.setup),
            "vars": dict(env.vars),
            "workdir": str(env.workdir),
            "python": env.python,
            "inherit_env": env.inherit_env,
        },
        "launcher": spec.launcher,
        "launcher_args": list(spec.launcher_args),
        "program": program,
        "output": spec.output,
    }
    if spec.template is not None:
        data["template"] = str(spec.template)
    header = f"# resolved from {spec.path} by hpcdist submit\n"
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def _memory_text(size: int) -> str:
    # the largest unit that represents the byte count exactly (load_spec needs a unit);
    # decimal units too, so 1.5GB comes back as 1500MB, not as a rounded or 1.5e+06 float
    for unit in ("TiB", "GiB", "MiB", "KiB", "TB", "GB", "MB", "KB"):
        factor = MEMORY_UNITS[unit]
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size // 1000}.{size % 1000:03d}KB"


# --- naming a job on the command line ---------------------------------------------------------


def resolve_job(target: str | None, scheduler: str | None = None) -> Job:
    """The job named by a run directory or a job id (``None``: the current directory).

    Args:
        target: a run directory made by :func:`submit`, or a batch job id.
        scheduler: the batch system of a bare job id (default: the one installed here).

    Raises:
        RunDirError: when ``target`` is neither, or the batch system cannot be told.
    """
    path = Path(target) if target is not None else Path.cwd()
    if target is None or path.is_dir() or not re.fullmatch(r"[\d._+]+", target):
        if target is not None and not path.exists():
            raise RunDirError(f"{target}: no such run directory, and not a job id "
                              "(SLURM: 42, 42_7 or 42+1; Grid Engine: 27 or 27.3)")
        return Job.from_run_dir(path)
    if scheduler is None:
        found = [name for name, cmd in (("slurm", "squeue"), ("sge", "qstat")) if shutil.which(cmd)]
        if len(found) != 1:
            raise RunDirError(
                f"job id {target}: cannot tell the batch system "
                f"({'both SLURM and Grid Engine' if found else 'neither squeue nor qstat'} found); "
                "pass --scheduler slurm or --scheduler sge"
            )
        scheduler = found[0]
    if scheduler not in ("slurm", "sge"):
        raise RunDirError(f"--scheduler {scheduler}: expected slurm or sge")
    from hpcdist.batch import JobIdError, get_system

    try:
        get_system(scheduler).check_job_id(target, "job id")
    except JobIdError as exc:
        raise RunDirError(str(exc)) from None
    return Job(job_id=target, system=scheduler)
