"""The job spec: YAML -> validated, frozen dataclasses.

Every validation rule lives here (the per-key rules in :mod:`hpcdist.spec.keys`). All
problems are collected and raised together in one :class:`~hpcdist.errors.SpecError`,
one per line as ``file:line:column: key.path: what is wrong``.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import string
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from hpcdist.errors import SpecError
from hpcdist.spec.keys import (
    DIRECTIVE_PATH_PATTERN,
    MAX_COUNT,
    OUTPUT_FIELDS,
    SPEC,
    Key,
    all_paths,
    check_value,
    control_char,
)
from hpcdist.spec.source import MAPPING, SCALAR, Node, Problem, Where, parse, parse_override_value, read_spec_text

__all__ = ["JobSpec", "Resources", "Environment", "Program", "load_spec", "parse_override", "system_rules",
           "TIMESTAMP_FORMAT"]

#: how ``{timestamp}`` in ``output`` is filled in
TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
#: the longest timestamp a run directory can get: hpcdist submit adds -2 ... -1000 on a clash
LONGEST_TIMESTAMP = "20000101-000000-1000"
#: bytes ``hpcdist submit`` adds to the run directory's name while it builds it (.NAME.XXXXXXXX.partial)
RUN_DIR_TEMP_EXTRA = len(".") + len(".XXXXXXXX.partial")
#: the longest file name most file systems hold, in bytes
NAME_MAX = 255


@dataclass(frozen=True)
class Resources:
    """What the job asks the batch system for (sizes in bytes, times in seconds)."""

    ranks: int
    nodes: int | None = None
    ranks_per_node: int | None = None
    cpus_per_rank: int = 1
    memory: int | None = None
    walltime: int | None = None
    grace: int = 120
    queue: str | None = None
    account: str | None = None
    gpus_per_node: int = 0
    parallel_environment: str = "mpi"
    memory_resource: str = "mem_free"
    directives: tuple[str, ...] = ()


@dataclass(frozen=True)
class Environment:
    """How the job script prepares the environment before the launch."""

    modules: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    vars: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    workdir: Path = Path(".")
    python: str = "python3"
    inherit_env: bool = False


@dataclass(frozen=True)
class Program:
    """What rank 0 runs: a driver script with arguments, or a pipeline description."""

    script: Path | None = None
    args: tuple[str, ...] = ()
    pipeline: Mapping[str, Any] | None = None
    #: the parsed pipeline (:class:`hpcdist.pipeline.model.Pipeline`) when ``pipeline`` is set
    parsed: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class JobSpec:
    """A validated job spec. Paths are absolute (relative ones were taken from the spec's folder).

    Attributes:
        name: job name.
        scheduler: slurm, sge or local.
        resources: requested resources.
        environment: modules, setup lines, variables, workdir, interpreter.
        launcher: auto, srun or mpiexec.
        launcher_args: extra launcher arguments.
        program: the driver script (or pipeline).
        output: the run-directory pattern as written ({name}, {timestamp}), see :meth:`run_dir`.
        template: a site job-script template, or None for the built-in one.
        path: absolute path of the spec file.
        source: the spec path as the user gave it (used in messages).
    """

    name: str
    scheduler: str
    resources: Resources
    environment: Environment
    program: Program
    path: Path
    source: str
    launcher: str = "auto"
    launcher_args: tuple[str, ...] = ()
    output: str = "runs/{name}-{timestamp}"
    template: Path | None = None

    @property
    def base_dir(self) -> Path:
        """The folder of the spec file: relative paths in the spec start here."""
        return self.path.parent

    def run_dir(self, timestamp: str | None = None) -> Path:
        """The absolute run directory for ``timestamp`` (default: now, as TIMESTAMP_FORMAT)."""
        stamp = timestamp if timestamp is not None else time.strftime(TIMESTAMP_FORMAT)
        rel = self.output.format(name=self.name, timestamp=stamp)
        return Path(os.path.normpath(self.base_dir / rel))

    def system_problems(self, system: str) -> list[str]:
        """``key: message`` for every rule of batch system ``system`` this spec breaks (see
        :func:`system_rules`); validation applies the same rules to ``scheduler``."""
        r = self.resources
        return [f"{key}: {message}" for key, message in system_rules(
            system, name=self.name, launcher=self.launcher, gpus_per_node=r.gpus_per_node, walltime=r.walltime)]

    def render(self, system: str | None = None, *, timestamp: str | None = None) -> str:
        """The job script for ``system`` (default: :attr:`scheduler`); see :func:`hpcdist.batch.render`."""
        from hpcdist.batch import render

        return render(self, system or self.scheduler, timestamp=timestamp)


def system_rules(system: Any, *, name: Any, launcher: Any, gpus_per_node: Any, walltime: Any) -> list[tuple[str, str]]:
    """The rules one batch system adds, as ``(key path, message)`` for each one broken.

    The one place of these rules: the validator applies them to the spec's ``scheduler`` (with
    file:line), and rendering for another system (``spec.render("sge")``) applies them too.
    Values that failed their own checks (not str/int) are skipped.
    """
    out: list[tuple[str, str]] = []
    if system not in ("slurm", "sge"):
        return out
    if walltime is None:
        out.append(("resources.walltime", f"required for {system} jobs (e.g. walltime: \"01:00:00\")"))
    if system == "sge":
        if launcher == "srun":
            out.append(("launcher", "srun exists only under SLURM; use auto or mpiexec"))
        if isinstance(gpus_per_node, int) and not isinstance(gpus_per_node, bool) and gpus_per_node:
            out.append(("resources.gpus_per_node", "Grid Engine has no standard GPU request; use "
                        "resources.directives with your site's resource (e.g. -l gpu=1)"))
        if isinstance(name, str) and name[:1].isdigit():
            out.append(("name", f"Grid Engine refuses job names that start with a digit, got {name!r}; "
                        "start it with a letter"))
    return out


def parse_override(text: str) -> tuple[str, str]:
    """Split ``key.path=value`` into its two parts.

    Raises:
        SpecError: when there is no ``=`` or no key.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set {text!r}: expected KEY.PATH=VALUE, e.g. resources.ranks=16")
    return key.strip(), value


def load_spec(path: str | os.PathLike[str], overrides: Iterable[str] = ()) -> JobSpec:
    """Read, override and validate a job spec.

    Args:
        path: the YAML file.
        overrides: ``key.path=value`` strings applied in order (values read as YAML), e.g.
            ``("resources.ranks=16", "scheduler=slurm")``.

    Returns:
        The validated spec.

    Raises:
        SpecError: listing every problem found, one per line.
    """
    source = os.fspath(path)
    text = read_spec_text(source)
    return _Validator(source, Path(os.path.abspath(source))).run(text, overrides)


class _Validator:
    def __init__(self, source: str, path: Path) -> None:
        self.source = source
        self.path = path
        self.base = path.parent
        self.problems: list[Problem] = []
        self.root: Node | None = None

    def problem(self, where: Where, path: str, message: str) -> None:
        self.problems.append(Problem(where, path, message))

    def run(self, text: str, overrides: Iterable[str]) -> JobSpec:
        root = parse(text, self.source, self.problems)
        if root is None and not self.problems:
            self.problem(Where(self.source, 1, 1), "",
                         "the spec is empty; it needs at least name, resources and program")
        elif root is not None and root.kind != MAPPING:
            self.problem(root.where, "", "the spec must be a mapping of keys (name: ..., resources: ...)")
            root = None
        if root is not None:
            self.root = root
            for text_ in overrides:
                self._override(text_)
            values = self._section(SPEC, root, "")
            spec = self._build(values)
        else:
            spec = None
        if self.problems or spec is None:
            self._raise()
        assert spec is not None
        return spec

    def _raise(self) -> None:
        lines = sorted(
            {str(p): p for p in self.problems}.items(),
            key=lambda kv: (kv[1].where.source != self.source, kv[1].where.line, kv[1].where.column),
        )
        n = len(lines)
        head = f"invalid job spec {self.source} ({n} problem{'s' if n != 1 else ''}):"
        error = SpecError("\n".join([head] + [text for text, _ in lines]))
        error.problems = [text for text, _ in lines]  # type: ignore[attr-defined]
        raise error

    # -- overrides ------------------------------------------------------------------

    def _override(self, text: str) -> None:
        where = Where(f"--set {text}")
        try:
            dotted, value_text = parse_override(text)
        except SpecError as exc:
            self.problem(where, "", str(exc).split(": ", 1)[-1])
            return
        parts = dotted.split(".")
        key: Key | None = SPEC
        for i, part in enumerate(parts):
            if key is not None and key.kind in ("strmap", "mapping"):
                if key.kind == "strmap" and i != len(parts) - 1:
                    key = None
                break
            key = key.child(part) if key is not None and key.kind == "section" else None
            if key is None:
                break
        if key is None or not all(parts):
            self.problem(where, dotted, "unknown key" + _suggest(dotted, all_paths()))
            return
        value = parse_override_value(value_text, where, self.problems)
        if value is None:
            return
        node = self.root
        assert node is not None
        for part in parts[:-1]:
            child = node.value.get(part)
            if child is None or child.kind != MAPPING:
                child = Node(MAPPING, {}, where)
                node.value[part] = child
            node.key_where[part] = where
            node = child
        node.value[parts[-1]] = value
        node.key_where[parts[-1]] = where

    # -- per-key checks -----------------------------------------------------------------

    def _section(self, key: Key, node: Node, path: str) -> dict[str, Any] | None:
        if node.kind != MAPPING:
            what = "a list" if node.kind != SCALAR else f"{node.raw!r}" if node.value is not None else "nothing"
            self.problem(node.where, path, f"expected a mapping of keys, got {what}")
            return None
        out: dict[str, Any] = {}
        for name, sub in node.value.items():
            subpath = f"{path}.{name}" if path else name
            k = key.child(name)
            if k is None:
                names = [c.name for c in key.children]
                self.problem(node.key_where.get(name, sub.where), subpath, "unknown key" + _suggest(name, names, path))
                continue
            if k.kind == "section":
                out[name] = self._section(k, sub, subpath)
                continue
            if sub.kind == SCALAR and sub.value is None and not k.required:
                continue  # `key: null` (or `--set key=null`) means: use the default

            value, err = check_value(k, sub)
            if err:
                self.problem(sub.where, subpath, err)
                out[name] = _INVALID
            else:
                out[name] = value
        for k in key.children:
            if k.name not in out:
                if k.required:
                    subpath = f"{path}.{k.name}" if path else k.name
                    self.problem(node.where, subpath, f"required key missing ({k.doc.rstrip('.')})")
                    out[k.name] = _INVALID
                elif k.kind == "section":
                    subpath = f"{path}.{k.name}" if path else k.name
                    out[k.name] = self._section(k, Node(MAPPING, {}, node.where), subpath)
                else:
                    out[k.name] = k.default
        return out

    def _where(self, dotted: str) -> Where:
        """The location of a key's value, falling back to its closest existing parent."""
        node = self.root
        assert node is not None
        where = node.where
        for part in dotted.split("."):
            if node is None or node.kind != MAPPING or part not in node.value:
                break
            node = node.value[part]
            where = node.where
        return where

    # -- cross-key checks and the dataclasses ---------------------------------------------

    def _build(self, v: dict[str, Any] | None) -> JobSpec | None:
        if v is None:
            return None
        # a section that failed its own checks is None or _INVALID here
        res, env, prog = (
            v.get(k) if isinstance(v.get(k), dict) else None for k in ("resources", "environment", "program")
        )
        scheduler = v.get("scheduler")
        self._check_name(v.get("name"))
        if res is not None:
            self._check_layout(res)
            self._check_totals(res)
            res = self._grace(res)
        for key, message in system_rules(scheduler, name=v.get("name"), launcher=v.get("launcher"),
                                         gpus_per_node=(res or {}).get("gpus_per_node"),
                                         walltime=(res or {}).get("walltime", _INVALID)):
            self.problem(self._where(key if key != "resources.walltime" else "resources"), key, message)
        environment = self._environment(env) if env is not None else None
        program = self._program(prog, environment) if prog is not None else None
        output = v.get("output")
        if output is not _INVALID and output is not None:
            self._check_output(output, v.get("name"))
        template = self._path(v.get("template"), "template", want="file")
        if scheduler in ("slurm", "sge") and isinstance(output, str) and not self.problems:
            self._check_directive_path(output, v.get("name"))
        if scheduler in ("slurm", "sge") and template is not None:
            self._check_template(template)
        if self.problems or res is None or program is None or environment is None:
            return None
        return JobSpec(
            name=v["name"],
            scheduler=scheduler,
            resources=Resources(**{k: tuple(x) if isinstance(x, list) else x for k, x in res.items()}),
            environment=environment,
            program=program,
            path=self.path,
            source=self.source,
            launcher=v["launcher"],
            launcher_args=tuple(v["launcher_args"]),
            output=output,
            template=template,
        )

    def _check_name(self, name: Any) -> None:
        if not isinstance(name, str) or name is _INVALID:
            return
        if name in (".", ".."):
            self.problem(self._where("name"), "name", f"{name!r} cannot be a job name (it is used in file names)")

    def _check_totals(self, res: dict[str, Any]) -> None:
        ranks, cpus = res.get("ranks"), res.get("cpus_per_rank")
        if isinstance(ranks, int) and isinstance(cpus, int) and ranks * cpus > MAX_COUNT:
            self.problem(self._where("resources.cpus_per_rank"), "resources",
                         f"ranks * cpus_per_rank = {ranks} * {cpus} = {ranks * cpus} CPUs, more than the limit "
                         f"{MAX_COUNT} (SLURM and Grid Engine count CPUs and slots in 32 bits)")

    def _check_layout(self, res: dict[str, Any]) -> None:
        ranks, nodes, rpn = res.get("ranks"), res.get("nodes"), res.get("ranks_per_node")
        if not isinstance(ranks, int):
            return
        if isinstance(nodes, int) and isinstance(rpn, int):
            if nodes * rpn != ranks:
                self.problem(self._where("resources.ranks_per_node"), "resources",
                             f"nodes * ranks_per_node = {nodes} * {rpn} = {nodes * rpn}, but ranks is {ranks}")
        elif isinstance(rpn, int) and ranks % rpn:
            self.problem(self._where("resources.ranks_per_node"), "resources.ranks_per_node",
                         f"ranks ({ranks}) is not a multiple of ranks_per_node ({rpn})")
        elif isinstance(nodes, int) and nodes > ranks:
            self.problem(self._where("resources.nodes"), "resources.nodes",
                         f"more nodes ({nodes}) than ranks ({ranks})")

    def _grace(self, res: dict[str, Any]) -> dict[str, Any]:
        walltime, grace = res.get("walltime"), res.get("grace")
        if not isinstance(walltime, int) or not isinstance(grace, int):
            return res
        explicit = self.root is not None and "grace" in getattr(self.root.value.get("resources"), "value", {})
        if grace >= walltime:
            if explicit:
                self.problem(self._where("resources.grace"), "resources.grace",
                             f"must be shorter than the walltime ({walltime} s), got {grace}")
            else:
                res = dict(res, grace=max(1, walltime // 2))  # the default adapts to short jobs
        return res

    def _program(self, prog: dict[str, Any], environment: Environment | None = None) -> Program | None:
        script, pipeline = prog.get("script"), prog.get("pipeline")
        if script is _INVALID or pipeline is _INVALID:
            return None
        if (script is None) == (pipeline is None):
            self.problem(self._where("program"), "program",
                         "expected exactly one of script or pipeline" + (", got both" if script else ", got neither"))
            return None
        if pipeline is not None:
            from hpcdist.pipeline.model import parse_pipeline

            node = self.root.value["program"].value["pipeline"]  # type: ignore[union-attr]
            dirs = dict.fromkeys(str(d) for d in (environment.workdir if environment else self.base, self.base))
            before = len(self.problems)
            parsed = parse_pipeline(node, self.problems, tuple(dirs))
            if parsed is None and len(self.problems) == before:
                return None
            return Program(pipeline=MappingProxyType(dict(pipeline)), parsed=parsed)
        try:
            words = shlex.split(script)
        except ValueError as exc:
            self.problem(self._where("program.script"), "program.script", f"cannot split into words: {exc}")
            return None
        if not words:
            self.problem(self._where("program.script"), "program.script", "expected a script path")
            return None
        path = self._path(words[0], "program.script", want="file")
        return Program(script=path, args=tuple(words[1:])) if path else None

    def _environment(self, env: dict[str, Any]) -> Environment | None:
        if any(x is _INVALID for x in env.values()):
            return None
        workdir = self._path(env["workdir"], "environment.workdir", want="dir")
        python = env["python"]
        if "/" in python:
            resolved = self._path(python, "environment.python", want="file")
            python = str(resolved) if resolved else python
        return Environment(
            modules=tuple(env["modules"]),
            setup=tuple(env["setup"]),
            vars=MappingProxyType(dict(env["vars"])),
            workdir=workdir or self.base,
            python=python,
            inherit_env=env["inherit_env"],
        )

    def _path(self, value: Any, dotted: str, want: str) -> Path | None:
        if value is None or value is _INVALID:
            return None
        path = Path(os.path.normpath(self.base / os.path.expanduser(value)))
        try:
            ok = path.is_file() if want == "file" else path.is_dir()
        except (OSError, ValueError) as exc:  # a name too long, a NUL: no such file can exist
            self.problem(self._where(dotted), dotted, f"{str(value)[:60]!r}: not a usable path "
                         f"({getattr(exc, 'strerror', None) or exc})")
            return None
        if not ok:
            what = "file" if want == "file" else "directory"
            self.problem(self._where(dotted), dotted,
                         f"{what} {value!r} not found (looked for {path}; relative paths start at the spec's folder)")
            return None
        return path

    def _check_template(self, template: Path) -> None:
        # the placeholders render fills in: a site template naming another one fails here, not at submit
        from hpcdist.batch.base import PLACEHOLDERS, JobTemplate

        try:
            text = read_spec_text(str(template))
        except SpecError as exc:
            self.problem(self._where("template"), "template", str(exc))
            return
        try:
            JobTemplate(text).substitute(dict.fromkeys(PLACEHOLDERS, ""))
        except KeyError as exc:
            self.problem(self._where("template"), "template",
                         f"{template}: unknown placeholder ${{{exc.args[0]}}}; available: "
                         + ", ".join(f"${{{k}}}" for k in sorted(PLACEHOLDERS)))
        except ValueError as exc:
            self.problem(self._where("template"), "template", f"{template}: bad placeholder: {exc}")

    def _check_directive_path(self, output: str, name: Any) -> None:
        # the run directory appears in --output= / -o, which sbatch and qsub parse without quoting
        run_dir = os.path.normpath(self.base / output.format(name=name, timestamp=LONGEST_TIMESTAMP))
        if not re.fullmatch(DIRECTIVE_PATH_PATTERN, run_dir):
            bad = sorted({c for c in run_dir if not re.fullmatch(DIRECTIVE_PATH_PATTERN, c)})
            where = "output" if "output" in self.root.value else ""  # type: ignore[union-attr]
            self.problem(self._where(where) if where else Where(self.source, 1, 1), "output",
                         f"the run directory {run_dir!r} holds {', '.join(repr(c) for c in bad)}, which cannot "
                         "appear in a batch directive (allowed: letters, digits and _ . / + @ % : , = -); "
                         "set output to another folder")

    def _check_output(self, output: str, name: Any) -> None:
        try:
            fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(output) if f is not None]
        except ValueError as exc:
            self.problem(self._where("output"), "output", f"bad {{placeholder}} syntax: {exc}")
            return
        names = [f for f, _, _ in fields]
        if any(spec or conv for _, spec, conv in fields):  # {name:>999999999} would fill gigabytes
            self.problem(self._where("output"), "output",
                         "placeholders take no format spec or conversion: write {name} and {timestamp}")
            return
        unknown = [n for n in names if n not in OUTPUT_FIELDS]
        for field_name in unknown:
            self.problem(self._where("output"), "output",
                         f"unknown placeholder {{{field_name}}}; available: "
                         + ", ".join(f"{{{f}}}" for f in OUTPUT_FIELDS))
        if unknown or not isinstance(name, str) or name is _INVALID:
            return
        rel = output.format(name=name, timestamp=LONGEST_TIMESTAMP)
        run_dir = os.path.normpath(self.base / rel)
        parts = [p for p in run_dir.split(os.sep) if p]
        if not parts:
            self.problem(self._where("output"), "output", "the run directory cannot be the file system root")
            return
        bad = control_char(run_dir)
        if bad:
            self.problem(self._where("output"), "output", "the run directory " + bad)
            return
        for i, part in enumerate(parts):
            extra = RUN_DIR_TEMP_EXTRA if i == len(parts) - 1 else 0
            size = len(part.encode("utf-8", "surrogateescape")) + extra
            if size > NAME_MAX:
                what = "the run directory's name" if extra else f"the folder {part[:40]!r}..."
                key = "output" if "output" in self.root.value else "name"  # type: ignore[union-attr]
                self.problem(self._where(key), key,
                             f"{what} would be {size} bytes"
                             + (f" (with the longest timestamp and the {extra} bytes hpcdist submit adds "
                                "while it builds it)" if extra else "")
                             + f", more than the file name limit of {NAME_MAX} bytes: shorten the name or output")
                return


class _Invalid:
    def __repr__(self) -> str:
        return "<invalid>"


_INVALID: Any = _Invalid()


def _suggest(name: str, candidates: list[str], section: str = "") -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    # a key put in the wrong section: ranks at the top level -> resources.ranks
    for path in all_paths():
        if path.rsplit(".", 1)[-1] == name and path != (f"{section}.{name}" if section else name):
            return f" (did you mean '{path}'?)"
    if candidates:
        where = f"in {section}" if section else "here"
        return f" (valid keys {where}: {', '.join(candidates)})"
    return ""

