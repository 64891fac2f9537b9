"""The job spec: YAML -> validated, frozen dataclasses.

Every validation rule lives here (the per-key rules in :mod:`hpcdist.spec.keys`). All
problems are collected and raised together in one :class:`~hpcdist.errors.SpecError`,
one per line as ``file:line:column: key.path: what is wrong``.
"""

from __future__ import annotations

import difflib
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from hpcdist.errors import SpecError
from hpcdist.pipeline.model import parse_pipeline
from hpcdist.spec.keys import BATCH_SYSTEMS, SPEC, Key, all_paths, check_value
from hpcdist.spec.rules import (
    directive_path_problems,
    launcher_problems,
    layout_problems,
    output_problems,
    system_rules,
    template_problems,
    total_problems,
)
from hpcdist.spec.source import MAPPING, SCALAR, Node, Problem, Where, parse, parse_override_value, read_spec_text

__all__ = ["JobSpec", "Resources", "Environment", "Program", "load_spec", "parse_override", "TIMESTAMP_FORMAT"]

#: how ``{timestamp}`` in ``output`` is filled in
TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"


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
        launcher: auto, srun, mpiexec or openmpi.
        launcher_args: extra launcher arguments.
        failure_timeout: seconds of silence after which rank 0 declares a worker lost.
        allowed_failures: deaths of workers running one task before it fails with ``KilledWorker``.
        trace: whether the ranks record a trace in the run directory.
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
    failure_timeout: int = 2
    allowed_failures: int = 3
    trace: bool = True
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
        :func:`hpcdist.spec.rules.system_rules`); validation applies the same rules to ``scheduler``."""
        r = self.resources
        return [f"{key}: {message}" for key, message in system_rules(
            system, name=self.name, launcher=self.launcher, gpus_per_node=r.gpus_per_node, walltime=r.walltime)]


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
            self._report(layout_problems(res) + total_problems(res))
            res = self._grace(res)
        for key, message in system_rules(scheduler, name=v.get("name"), launcher=v.get("launcher"),
                                         gpus_per_node=(res or {}).get("gpus_per_node"),
                                         walltime=(res or {}).get("walltime", _INVALID)):
            self.problem(self._where(key if key != "resources.walltime" else "resources"), key, message)
        for key, message in launcher_problems(v.get("launcher"), v.get("launcher_args")):
            self.problem(self._where(key), key, message)
        environment = self._environment(env) if env is not None else None
        program = self._program(prog, environment) if prog is not None else None
        output = v.get("output")
        if output is not _INVALID and output is not None:
            name = v.get("name")
            self._report(output_problems(self.base, output, name, isinstance(name, str) and name is not _INVALID,
                                         self._has("output")))
        template = self._path(v.get("template"), "template", want="file")
        if scheduler in BATCH_SYSTEMS and isinstance(output, str) and not self.problems:
            self._report(directive_path_problems(self.base, output, v.get("name"), self._has("output")))
        if scheduler in BATCH_SYSTEMS and template is not None:
            self._report(template_problems(template))
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
            failure_timeout=v["failure_timeout"],
            allowed_failures=v["allowed_failures"],
            trace=v["trace"],
            output=output,
            template=template,
        )

    def _has(self, key: str) -> bool:
        assert self.root is not None
        return key in self.root.value

    def _report(self, problems: list[tuple[str | None, str, str]]) -> None:
        for where, key, message in problems:
            self.problem(self._where(where) if where else Where(self.source, 1, 1), key, message)

    def _check_name(self, name: Any) -> None:
        if not isinstance(name, str) or name is _INVALID:
            return
        if name in (".", ".."):
            self.problem(self._where("name"), "name", f"{name!r} cannot be a job name (it is used in file names)")

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

