"""The parsed ``program.pipeline`` section: tasks, references, map and after.

:func:`parse_pipeline` turns the YAML node tree (with file:line:column) into a frozen
:class:`Pipeline`, appending every problem it finds to the spec validator's list, so a
pipeline is checked on the same path, with the same message format, as the rest of the spec.
"""

from __future__ import annotations

import difflib
import graphlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from hpcdist.pipeline.imports import check_callables
from hpcdist.spec.keys import PIPELINE, TASK_NAME_PATTERN, describe, parse_int_text
from hpcdist.spec.source import MAPPING, SCALAR, SEQUENCE, Node, Problem, Where

__all__ = ["Ref", "TaskDef", "Pipeline", "parse_pipeline", "find_cycle", "TASK_NAME_PATTERN", "ON_ERROR"]

# key names, patterns, choices and minimums come from the key table (hpcdist.spec.keys.PIPELINE),
# which also yields the JSON Schema: one description of the section
_TASKS = PIPELINE.child("tasks")
_TASK = _TASKS.children[0]  # type: ignore[union-attr]
ON_ERROR = PIPELINE.child("on_error").choices  # type: ignore[union-attr]
_CALL_RE = re.compile(_TASK.child("call").pattern)  # type: ignore[union-attr,arg-type]
_MODULE_RE = re.compile(PIPELINE.child("module").pattern)  # type: ignore[union-attr,arg-type]
_PIPELINE_KEYS = tuple(k.name for k in PIPELINE.children)
#: longest task name: stored results are named NAME-<32 hex>.meta.json, written under a temporary
#: name (.NAME-....meta.json.XXXXXXXX.tmp), which must fit in 255 bytes
MAX_TASK_NAME = 128
_TASK_KEYS = tuple(k.name for k in _TASK.children)


@dataclass(frozen=True)
class Ref:
    """``{ref: NAME}`` inside args/kwargs: replaced by task NAME's output."""

    name: str


@dataclass(frozen=True)
class TaskDef:
    """One task of the pipeline as written (a mapped task expands into several at run time).

    Attributes:
        name: the task's name (key under ``tasks``).
        call: ``package.module:function``, or a name in the pipeline's ``module``.
        args: positional arguments; :class:`Ref` objects anywhere inside stand for outputs.
        kwargs: keyword arguments, same rules as ``args``.
        map: None, the name of a task to fan out over, or a literal list.
        after: tasks that must finish first (no data passed).
        retries: reruns after a failure or timeout.
        timeout: seconds one attempt may take (None: no limit).
        workers: rank numbers or host names preferred for this task (a hint).
        resources: free-form hints, recorded in the manifest.
        cache: False: always recompute (and so every task downstream).
        version: free text mixed into the cache key (change it to force a recompute).
        where: position of the task in the spec (for messages).
    """

    name: str
    call: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    map: str | tuple[Any, ...] | None = None
    after: tuple[str, ...] = ()
    retries: int = 0
    timeout: float | None = None
    workers: tuple[Any, ...] = ()
    resources: dict[str, Any] = field(default_factory=dict)
    cache: bool = True
    version: str | None = None
    where: Where = Where("")

    @property
    def refs(self) -> list[str]:
        """Names referenced with ``{ref: NAME}`` in args and kwargs, in order, without repeats."""
        out: list[str] = []
        _collect_refs((self.args, self.kwargs), out)
        return list(dict.fromkeys(out))

    @property
    def deps(self) -> list[str]:
        """Every task this one waits for: refs, the mapped-over task, after."""
        names = list(self.refs)
        if isinstance(self.map, str):
            names.append(self.map)
        names.extend(self.after)
        return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Pipeline:
    """A validated pipeline.

    Attributes:
        tasks: task definitions by name, in spec order.
        module: default module for ``call`` names without a colon.
        on_error: ``continue`` (skip what depends on a failed task) or ``stop``.
        save: names of the tasks whose outputs go to the run directory's ``outputs/``.
        import_dirs: folders put first on ``sys.path`` to import the callables.
        resubmit: how many times a batch job stopped at the walltime may submit itself again.
    """

    tasks: dict[str, TaskDef]
    module: str | None = None
    on_error: str = "continue"
    save: tuple[str, ...] = ()
    import_dirs: tuple[str, ...] = ()
    resubmit: int = 0

    def target(self, name: str) -> tuple[str, str]:
        """``(module, attribute path)`` of task ``name``'s callable."""
        return split_call(self.tasks[name].call, self.module)


def split_call(call: str, module: str | None) -> tuple[str, str]:
    """``"pkg.mod:fn"`` -> ``("pkg.mod", "fn")``; ``"fn"`` -> ``(module, "fn")``."""
    if ":" in call:
        mod, _, attr = call.partition(":")
        return mod, attr
    return module or "", call


def _collect_refs(value: Any, out: list[str]) -> None:
    if isinstance(value, Ref):
        out.append(value.name)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _collect_refs(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            _collect_refs(v, out)


# ---- parsing --------------------------------------------------------------------------------


class _Parser:
    def __init__(self, problems: list[Problem], prefix: str) -> None:
        self.problems = problems
        self.prefix = prefix
        self.ok = True

    def problem(self, where: Where, path: str, message: str) -> None:
        self.ok = False
        self.problems.append(Problem(where, f"{self.prefix}.{path}" if path else self.prefix, message))

    def unknown_keys(self, node: Node, allowed: tuple[str, ...], path: str) -> None:
        for name in node.value:
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (valid keys: {', '.join(allowed)})"
                sub = f"{path}.{name}" if path else name
                self.problem(node.key_where.get(name, node.where), sub, "unknown key" + hint)

    def scalar(self, node: Node | None, path: str, types: tuple[type, ...], what: str) -> Any:
        if node is None or (node.kind == SCALAR and node.value is None):
            return None
        if node.kind != SCALAR or isinstance(node.value, bool) and bool not in types or not isinstance(
            node.value, types
        ):
            self.problem(node.where, path, f"expected {what}, got {describe(node)}")
            return None
        return node.value

    def value(self, node: Node, path: str) -> Any:
        """Plain data with ``{ref: NAME}`` mappings turned into :class:`Ref`."""
        if node.kind == MAPPING:
            if "ref" in node.value:
                if len(node.value) != 1:
                    self.problem(node.where, path, "a {ref: NAME} mapping takes no other keys")
                    return None
                target = node.value["ref"]
                if target.kind != SCALAR or not isinstance(target.value, str):
                    self.problem(target.where, f"{path}.ref", f"expected a task name, got {describe(target)}")
                    return None
                return _Located(Ref(target.value), target.where, f"{path}.ref")
            return {k: self.value(v, f"{path}.{k}") for k, v in node.value.items()}
        if node.kind == SEQUENCE:
            return [self.value(v, f"{path}[{i}]") for i, v in enumerate(node.value)]
        if not node.quoted and node.raw is not None and _AMBIGUOUS_RE.fullmatch(node.raw.strip()):
            self.problem(node.where, path,
                         f"{node.raw.strip()} means different things in YAML 1.1 (here: {node.value!r}) and "
                         "YAML 1.2; quote it for the text, or write the number in decimal digits "
                         "(true/false for a boolean)")
            return None
        return node.value


# plain scalars YAML 1.1 and 1.2 read differently: 010 (octal 8 / 10), 0o10, 1_000, 1:30 (base 60),
# yes/no/on/off/y/n (booleans / strings)
_AMBIGUOUS_RE = re.compile(
    r"[-+]?0[0-9_]+|[-+]?0o[0-7_]+|[-+]?[0-9][0-9_]*_[0-9_]*(?:\.[0-9_]*)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+"
    r"(?:\.[0-9_]*)?|(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|y|Y|n|N)"
)


@dataclass(frozen=True)
class _Located:
    ref: Ref
    where: Where
    path: str


def _strip(value: Any, refs: list[_Located]) -> Any:
    # replace _Located by its Ref, remembering where each reference was written
    if isinstance(value, _Located):
        refs.append(value)
        return value.ref
    if isinstance(value, list):
        return tuple(_strip(v, refs) for v in value)
    if isinstance(value, dict):
        return {k: _strip(v, refs) for k, v in value.items()}
    return value


def parse_pipeline(node: Node, problems: list[Problem], import_dirs: tuple[str, ...] = ()) -> Pipeline | None:
    """Check a ``program.pipeline`` node and build the :class:`Pipeline`.

    Every problem is appended to ``problems`` as ``file:line:column: key.path: message``:
    unknown keys, wrong types, references to unknown tasks, cycles (the cycle is named),
    ``map`` over something that is not a list, callables that cannot be imported or are
    not callable (imported here, with ``import_dirs`` first on ``sys.path``).

    Returns:
        The pipeline, or None when there was a problem.
    """
    p = _Parser(problems, "program.pipeline")
    if node.kind != MAPPING:
        p.problem(node.where, "", f"expected a mapping with tasks:, got {describe(node)}")
        return None
    p.unknown_keys(node, _PIPELINE_KEYS, "")
    module = p.scalar(node.value.get("module"), "module", (str,), "a module name such as mypkg.tasks")
    if module is not None and not _MODULE_RE.fullmatch(module):
        p.problem(node.value["module"].where, "module", f"expected a dotted module name, got {module!r}")
        module = None
    on_error = p.scalar(node.value.get("on_error"), "on_error", (str,), "continue or stop") or "continue"
    if on_error not in ON_ERROR:
        p.problem(node.value["on_error"].where, "on_error", f"expected continue or stop, got {on_error!r}")
    resubmit = _count(p, node.value.get("resubmit"), "resubmit", PIPELINE)
    tasks_node = node.value.get("tasks")
    if tasks_node is None or tasks_node.kind != MAPPING or not tasks_node.value:
        where = tasks_node.where if tasks_node is not None else node.where
        got = "nothing" if tasks_node is None else describe(tasks_node)
        p.problem(where, "tasks", f"expected a mapping of task names to tasks ({{call: ...}}), got {got}")
        return None
    tasks: dict[str, TaskDef] = {}
    ref_sites: dict[str, list[_Located]] = {}
    for name, tnode in tasks_node.value.items():
        where = tasks_node.key_where.get(name, tnode.where)
        if not re.fullmatch(TASK_NAME_PATTERN, name, re.ASCII):
            p.problem(where, f"tasks.{name}", "task names are letters, digits, _ and - (not first a digit or -)")
            continue
        if len(name) > MAX_TASK_NAME:
            p.problem(where, f"tasks.{name[:20]}...", f"a task name is at most {MAX_TASK_NAME} characters "
                      f"(it is part of file names in the run directory), got {len(name)}")
            continue
        task, sites = _parse_task(p, name, tnode, where)
        if task is not None:
            tasks[name] = task
            ref_sites[name] = sites
    save = _parse_save(p, node.value.get("save"), tasks_node)
    _check_links(p, tasks, ref_sites, tasks_node)
    # every check runs, so all problems are reported at once
    cycle = find_cycle({n: t.deps for n, t in tasks.items()})
    if cycle:
        first = tasks[cycle[0]]
        p.problem(first.where, f"tasks.{cycle[0]}", "dependency cycle: " + " -> ".join(cycle + [cycle[0]]))
    targets: dict[str, tuple[str, str]] = {}
    for t in tasks.values():
        mod, attr = split_call(t.call, module)
        if not mod:
            p.problem(t.where, f"tasks.{t.name}.call",
                      f"{t.call!r} names no module: write module:function or set program.pipeline.module")
            continue
        targets[t.name] = (mod, attr)
    if targets:
        try:
            errors = check_callables(targets.values(), import_dirs)
        except ValueError as exc:  # a bad HPCDIST_IMPORT_TIMEOUT
            p.problem(node.where, "", str(exc))
            errors = {}
        for name, target in targets.items():
            if errors.get(target):
                p.problem(tasks[name].where, f"tasks.{name}.call", errors[target])
    if not p.ok:
        return None
    if save is None:  # default: the outputs nobody else consumes
        used = {d for t in tasks.values() for d in t.deps}
        save = tuple(n for n in tasks if n not in used)
    return Pipeline(tasks=tasks, module=module, on_error=on_error, save=save, import_dirs=tuple(import_dirs),
                    resubmit=resubmit or 0)


def _count(p: _Parser, node: Node | None, path: str, parent: Any) -> int | None:
    """An integer key with the minimum and maximum its key-table entry gives (retries, resubmit),
    read from the text as written (``retries: 010`` is refused, not octal 8)."""
    key = parent.child(path.rsplit(".", 1)[-1])
    if node is None or (node.kind == SCALAR and node.value is None):
        return None
    value, err = parse_int_text(node, f"an integer >= {key.minimum}")
    if err:
        p.problem(node.where, path, err)
        return None
    assert value is not None
    if value < key.minimum:
        p.problem(node.where, path, f"expected an integer >= {key.minimum}, got {value}")
        return None
    if key.maximum is not None and value > key.maximum:
        p.problem(node.where, path, f"{value} is more than the limit {key.maximum}")
        return None
    return value


_NUMBER_RE = re.compile(r"[+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _seconds(p: _Parser, node: Node | None, path: str) -> float | None:
    """A positive, finite number of seconds read from the text as written (``1e3`` is 1000;
    ``1:30`` (YAML 1.1: base 60), ``0x10``, ``.inf`` are refused)."""
    if node is None or (node.kind == SCALAR and node.value is None):
        return None
    raw = str(node.raw).strip() if node.kind == SCALAR else ""
    if node.kind != SCALAR or node.quoted or isinstance(node.value, bool) or not _NUMBER_RE.fullmatch(raw):
        hint = ": YAML 1.1 reads it in base 60; write the seconds in decimal" if re.fullmatch(
            r"[0-9]+(?::[0-5]?[0-9])+(?:\.[0-9]*)?", raw) and not node.quoted else ""
        p.problem(node.where, path, f"expected a number of seconds > 0, got {describe(node)}{hint}")
        return None
    value = float(raw)
    if not 0 < value < 1e9:
        p.problem(node.where, path, f"expected a number of seconds > 0 (and < 1e9), got {raw}")
        return None
    return value


def _parse_task(p: _Parser, name: str, node: Node, where: Where) -> tuple[TaskDef | None, list[_Located]]:
    path = f"tasks.{name}"
    if node.kind != MAPPING:
        p.problem(node.where, path, f"expected a mapping such as {{call: module:function}}, got {describe(node)}")
        return None, []
    p.unknown_keys(node, _TASK_KEYS, path)
    v = node.value
    call = p.scalar(v.get("call"), f"{path}.call", (str,), "module:function or a function name")
    if call is None:
        if "call" not in v:
            p.problem(where, f"{path}.call", "required key missing (the function to run)")
        return None, []
    if not _CALL_RE.fullmatch(call):
        p.problem(v["call"].where, f"{path}.call", f"expected module:function or a function name, got {call!r}")
    sites: list[_Located] = []
    args: tuple[Any, ...] = ()
    if "args" in v and v["args"].value is not None:
        if v["args"].kind != SEQUENCE:
            p.problem(v["args"].where, f"{path}.args", f"expected a list, got {describe(v['args'])}")
        else:
            args = _strip(p.value(v["args"], f"{path}.args"), sites)
    kwargs: dict[str, Any] = {}
    if "kwargs" in v and v["kwargs"].value is not None:
        if v["kwargs"].kind != MAPPING:
            p.problem(v["kwargs"].where, f"{path}.kwargs", f"expected a mapping, got {describe(v['kwargs'])}")
        else:
            kwargs = _strip(p.value(v["kwargs"], f"{path}.kwargs"), sites)
            for k in kwargs:
                if not k.isidentifier():
                    p.problem(v["kwargs"].key_where.get(k, v["kwargs"].where), f"{path}.kwargs.{k}",
                              "not a valid keyword argument name")
    map_: str | tuple[Any, ...] | None = None
    if "map" in v and v["map"].value is not None:
        m = v["map"]
        if m.kind == SEQUENCE:
            inner: list[_Located] = []
            map_ = _strip(p.value(m, f"{path}.map"), inner)
            if inner:
                p.problem(inner[0].where, f"{path}.map",
                          "a literal map list cannot hold {ref: ...}; write map: NAME to map over a task's output")
        elif m.kind == SCALAR and isinstance(m.value, str):
            map_ = m.value
        elif m.kind == MAPPING and set(m.value) == {"ref"}:
            ref = p.value(m, f"{path}.map")
            map_ = ref.ref.name if isinstance(ref, _Located) else None
        else:
            p.problem(m.where, f"{path}.map", f"expected a task name or a literal list to map over, got {describe(m)}")
    after: tuple[str, ...] = ()
    if "after" in v and v["after"].value is not None:
        a = v["after"]
        items = [a] if a.kind == SCALAR else a.value if a.kind == SEQUENCE else None
        if items is None or any(i.kind != SCALAR or not isinstance(i.value, str) for i in items):
            p.problem(a.where, f"{path}.after", f"expected a task name or a list of task names, got {describe(a)}")
        else:
            after = tuple(i.value for i in items)
    retries = _count(p, v.get("retries"), f"{path}.retries", _TASK)
    timeout = _seconds(p, v.get("timeout"), f"{path}.timeout")
    workers: tuple[Any, ...] = ()
    if "workers" in v and v["workers"].value is not None:
        w = v["workers"]
        items = [w] if w.kind == SCALAR else w.value if w.kind == SEQUENCE else None
        if items is None or any(i.kind != SCALAR or isinstance(i.value, bool)
                                or not isinstance(i.value, (int, str)) for i in items):
            p.problem(w.where, f"{path}.workers", f"expected ranks or host names, got {describe(w)}")
        else:
            workers = tuple(_worker(p, i, f"{path}.workers") for i in items)
    resources: dict[str, Any] = {}
    if "resources" in v and v["resources"].value is not None:
        if v["resources"].kind != MAPPING:
            p.problem(v["resources"].where, f"{path}.resources", f"expected a mapping, got {describe(v['resources'])}")
        else:
            resources = v["resources"].plain()
    cache = p.scalar(v.get("cache"), f"{path}.cache", (bool,), "true or false")
    version = p.scalar(v.get("version"), f"{path}.version", (str, int), "a string or an integer, e.g. version: 2")
    task = TaskDef(
        name=name, call=call, args=tuple(args), kwargs=dict(kwargs), map=map_, after=after,
        retries=retries or 0, timeout=float(timeout) if timeout is not None else None, workers=workers,
        resources=resources, cache=True if cache is None else cache, where=where,
        version=None if version is None else str(version),
    )
    if isinstance(map_, str):
        sites.append(_Located(Ref(map_), v["map"].where, f"{path}.map"))
    for a_name in after:
        sites.append(_Located(Ref(a_name), v["after"].where, f"{path}.after"))
    return task, sites


def _worker(p: _Parser, node: Node, path: str) -> Any:
    # a rank is read from its text (workers: [010] is not octal 8); a host name is a string
    if isinstance(node.value, str):
        return node.value
    value, err = parse_int_text(node, "a rank or a host name")
    if err:
        p.problem(node.where, path, err)
    return value


def _parse_save(p: _Parser, node: Node | None, tasks_node: Node) -> tuple[str, ...] | None:
    if node is None or (node.kind == SCALAR and node.value is None):
        return None
    items = [node] if node.kind == SCALAR else node.value if node.kind == SEQUENCE else None
    if items is None or any(i.kind != SCALAR or not isinstance(i.value, str) for i in items):
        p.problem(node.where, "save", f"expected a list of task names, got {describe(node)}")
        return None
    for i in items:
        if i.value not in tasks_node.value:
            p.problem(i.where, "save", f"unknown task {i.value!r}" + _close(i.value, list(tasks_node.value)))
    return tuple(dict.fromkeys(i.value for i in items))


def _check_links(p: _Parser, tasks: dict[str, TaskDef], sites: dict[str, list[_Located]], tasks_node: Node) -> None:
    for name, located in sites.items():
        for loc in located:
            target = loc.ref.name
            if target == name:
                p.problem(loc.where, loc.path, f"task {name!r} refers to itself")
            elif target not in tasks:
                p.problem(loc.where, loc.path, f"unknown task {target!r}" + _close(target, list(tasks)))
    for t in tasks.values():
        if isinstance(t.map, tuple) and not t.map:
            p.problem(t.where, f"tasks.{t.name}.map", "maps over an empty list: nothing would run")


def _close(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else f" (tasks: {', '.join(names)})"


def find_cycle(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """One dependency cycle in ``deps`` (name -> names it depends on), or ``[]``.

    The cycle is returned in dependency order, e.g. ``["a", "b", "c"]`` for a -> b -> c -> a,
    starting from the name a depth-first walk in ``deps``'s order meets first. Unknown names are
    ignored.
    """
    # graphlib walks from a node to its successors: give it each name's dependents as its
    # predecessors, so that the walk follows the dependencies.
    dependents: dict[str, list[str]] = {name: [] for name in deps}
    for name, needs in deps.items():
        for d in needs:
            if d in dependents:
                dependents[d].append(name)
    try:
        graphlib.TopologicalSorter(dependents).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1][:-1])
    return []
