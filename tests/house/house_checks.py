"""Checkers of the house rules (docs/architecture.md, "Rules the tests keep").

Every checker takes a :class:`Tree` (a directory holding the ``hpcdist`` package, read from its
files, never imported unless the checker says so) and returns findings as plain strings, empty
when the rule holds. ``test_house_tree.py`` runs them on the repository; ``test_house_checks.py``
feeds them small synthetic trees to show that each one fails when it should.

Run as a script to list every finding of a checkout: ``python tests/house/house_checks.py [ROOT]``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
import textwrap
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

PACKAGE = "hpcdist"

#: largest module, in lines
MAX_LINES = 500

#: third-party modules that may be imported inside a function, and why: they are optional, heavy, or
#: start MPI, and ``import hpcdist`` must stay cheap. Anything else outside hpcdist is imported at the
#: top of the module; hpcdist's own modules may be imported lazily, but each such import is an edge
#: of the import graph like any other (no lazy import dodges a cycle).
LAZY_ALLOWED = frozenset({
    "mpi4py",  # initialises MPI
    "dask", "distributed",  # bench peers, optional
    "numpy",  # heavy; kept out of the CLI's start-up
    "cloudpickle",  # heavy; only the runtime pickles functions
    "yaml",  # only spec/pipeline readers need it
    "click",  # only the CLI
    "jsonschema",  # optional validator
    "importlib",  # the lazy loaders' own tool (import_module by name); already loaded by Python
    "ctypes",  # loads libc for Linux-only prctl calls; pointless elsewhere
})

#: modules that ``hpcdist.runtime.scheduling`` may not import (it is pure: no threads, clock, OS, MPI)
IMPURE = frozenset({
    "threading", "_thread", "time", "queue", "socket", "subprocess", "mpi4py", "os",
    "multiprocessing", "concurrent", "asyncio", "select", "selectors", "signal",
})

#: modules whose import marks an hpcdist module as "threading-using" (``concurrent.futures`` alone
#: does not: errors.py subclasses its exceptions; its executors are caught by :data:`THREAD_NAMES`)
THREAD_MODULES = frozenset({"threading", "_thread", "multiprocessing", "queue"})
THREAD_NAMES = frozenset({"ThreadPoolExecutor", "ProcessPoolExecutor"})

#: top-level module -> the only hpcdist modules (or packages, by prefix) that may import it
SINGLE_IMPORTERS = {
    # the bench's peers are the yardsticks: mpi4py.futures itself and a raw mpi4py ping-pong, run in
    # their own child processes (hpcdist's runtime never imports them)
    "mpi4py": ("hpcdist.transports.mpi", "hpcdist.bench.peers"),
    "click": ("hpcdist.cli",),
}

#: (module, private attribute) pairs allowed across modules, and why: the waiter protocol of
#: ``concurrent.futures.Future`` (its ``_condition``, ``_waiters`` and ``_state``), which the standard
#: library's own ``wait``/``as_completed`` use on every future; hpcdist's must work on standard futures too
PRIVATE_ALLOWED = frozenset({
    ("hpcdist.runtime.waiting", "_condition"),
    ("hpcdist.runtime.waiting", "_waiters"),
    ("hpcdist.runtime.waiting", "_state"),
})


def is_private(name: str) -> bool:
    """``_name`` but not ``__dunder__``."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@dataclass(frozen=True)
class Import:
    """One import made by a module of the tree.

    Attributes:
        module: the importing module.
        target: absolute name of what is imported: for ``from a import b`` the module ``a.b`` if it
            is a module of the tree, else ``a``.
        name: for ``from a import b`` where ``b`` is not a module: ``b``; else ``""``.
        line: line number.
        lazy: made inside a function.
        dynamic: ``importlib.import_module("...")`` or ``__import__("...")`` with a literal name.
    """

    module: str
    target: str
    name: str
    line: int
    lazy: bool
    dynamic: bool = False

    @property
    def top(self) -> str:
        return self.target.split(".")[0]

    def where(self) -> str:
        return f"{self.module}:{self.line}"


class Tree:
    """The modules of one checkout's package, parsed.

    Args:
        root: the directory holding the package directory (a repository root).
        package: the package's name.
    """

    def __init__(self, root: str | Path, package: str = PACKAGE) -> None:
        self.root = Path(root)
        self.package = package
        self.paths: dict[str, Path] = {}
        for path in sorted((self.root / package).rglob("*.py")):
            parts = list(path.relative_to(self.root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            self.paths[".".join(parts)] = path
        self.asts: dict[str, ast.Module] = {}
        #: modules that do not parse: ``module -> error`` (their imports are unknown)
        self.unparsed: dict[str, str] = {}
        for module, path in self.paths.items():
            try:
                self.asts[module] = ast.parse(path.read_text(), str(path))
            except SyntaxError as exc:
                self.unparsed[module] = f"{exc.msg} (line {exc.lineno})"
                self.asts[module] = ast.Module(body=[], type_ignores=[])
        self._imports: list[Import] | None = None

    def is_package(self, module: str) -> bool:
        return self.paths[module].name == "__init__.py"

    def ours(self, name: str) -> bool:
        return name == self.package or name.startswith(self.package + ".")

    def rel(self, module: str) -> str:
        return self.paths[module].relative_to(self.root).as_posix()

    def imports(self) -> list[Import]:
        """Every import of every module, module-level and inside functions."""
        if self._imports is None:
            self._imports = [imp for m in self.paths for imp in self._imports_of(m)]
        return self._imports

    def graph(self) -> dict[str, dict[str, int]]:
        """module -> {imported module of the tree: line of the first such import}."""
        edges: dict[str, dict[str, int]] = {m: {} for m in self.paths}
        for imp in self.imports():
            if imp.target in self.paths and imp.target != imp.module:
                edges[imp.module].setdefault(imp.target, imp.line)
        return edges

    def resolve(self, module: str, base: str | None, level: int) -> str:
        """The absolute name of ``from <level dots><base> import ...`` written in ``module``."""
        if not level:
            return base or ""
        parts = module.split(".")
        if not self.is_package(module):
            parts.pop()
        parts = parts[: len(parts) - (level - 1)]
        return ".".join(parts + ([base] if base else []))

    def _imports_of(self, module: str) -> Iterator[Import]:
        for node, lazy in _walk(self.asts[module]):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(module, alias.name, "", node.lineno, lazy)
            elif isinstance(node, ast.ImportFrom):
                base = self.resolve(module, node.module, node.level)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in self.paths:
                        yield Import(module, sub, "", node.lineno, lazy)
                    else:
                        yield Import(module, base, "" if alias.name == "*" else alias.name, node.lineno, lazy)
            elif isinstance(node, ast.Call):
                name = _literal_import(node)
                if name is not None:
                    yield Import(module, name, "", node.lineno, lazy, dynamic=True)


def _walk(tree: ast.AST) -> Iterator[tuple[ast.AST, bool]]:
    """Every node with whether it sits inside a function (def, async def or lambda)."""
    stack: list[tuple[ast.AST, bool]] = [(tree, False)]
    while stack:
        node, lazy = stack.pop()
        yield node, lazy
        inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))


def _literal_import(call: ast.Call) -> str | None:
    """``"x.y"`` for ``importlib.import_module("x.y")`` / ``import_module("x.y")`` / ``__import__("x.y")``."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name not in ("import_module", "__import__") or not call.args:
        return None
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and not arg.value.startswith("."):
        return arg.value
    return None


# -- 1. import cycles and lazy imports ---------------------------------------------------------


def import_cycles(tree: Tree) -> list[str]:
    """One finding per strongly connected component of the import graph: a shortest cycle in it."""
    graph = tree.graph()
    findings = []
    for component in _components(graph):
        cycle = _shortest_cycle(graph, component)
        steps = " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:]))
        findings.append(f"import cycle: {steps} -> {cycle[-1]}"
                        + (f"; {len(component)} modules in this knot: {', '.join(sorted(component))}"
                           if len(component) > len(cycle) - 1 else ""))
    return findings


def _components(graph: dict[str, dict[str, int]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan), in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(found, key=lambda c: min(c))


def _shortest_cycle(graph: dict[str, dict[str, int]], component: set[str]) -> list[str]:
    """``[a, b, ..., a]``: a shortest cycle through the first module of ``component``."""
    start = min(component)
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start]
                if w in component and w not in parent:
                    parent[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def lazy_imports(tree: Tree, allowed: Iterable[str] = LAZY_ALLOWED) -> list[str]:
    """Imports inside functions of modules that are neither hpcdist's own nor in ``allowed``."""
    allowed = frozenset(allowed)
    return sorted([
        f"{imp.where()}: imports {imp.target} inside a function (not {tree.package}'s own, not in LAZY_ALLOWED)"
        for imp in tree.imports()
        if imp.lazy and not tree.ours(imp.target) and imp.top not in allowed
    ], key=_by_place)


_IMPORT_EACH = r"""
import importlib, json, sys, traceback
root, package, modules = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path.insert(0, root)
failures = {}
ours = lambda m: m == package or m.startswith(package + ".")
mpi = lambda m: m == "mpi4py" or m.startswith("mpi4py.")
for name in modules:
    for loaded in [m for m in sys.modules if ours(m) or mpi(m)]:
        del sys.modules[loaded]
    try:
        module = importlib.import_module(name)
        if not module.__file__.startswith(root):
            failures[name] = "imported from " + module.__file__ + ", not from the tree"
        elif any(mpi(m) for m in sys.modules):
            failures[name] = "importing it loads mpi4py (import it inside the function that needs MPI)"
    except BaseException as exc:
        failures[name] = traceback.format_exception_only(type(exc), exc)[-1].strip()
print(json.dumps(failures))
"""


def import_each(tree: Tree, timeout: float = 300) -> list[str]:
    """Import every module (but ``__main__``) in one fresh interpreter, each from a ``sys.modules``
    with none of the package's modules (nor mpi4py) loaded; one finding per module that fails to
    import or whose import loads mpi4py."""
    modules = [m for m in tree.paths if not m.endswith(".__main__")]
    proc = subprocess.run(
        [sys.executable, "-I", "-B", "-c", _IMPORT_EACH, str(tree.root.resolve()), tree.package, *modules],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=tree.root,
    )
    if proc.returncode != 0:
        return [f"the import-each interpreter failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"]
    return [f"import {name} (fresh interpreter): {error}" for name, error in json.loads(proc.stdout).items()]


# -- 2. the pure scheduling core -----------------------------------------------------------------


def impure_imports(tree: Tree, subpackage: str = "hpcdist.runtime.scheduling",
                   banned: Iterable[str] = IMPURE) -> list[str]:
    """Imports of ``banned`` modules (anywhere in the file) by the modules of ``subpackage``."""
    banned = frozenset(banned)
    return sorted([
        f"{imp.where()}: the pure {subpackage} imports {imp.target}"
        for imp in tree.imports()
        if (imp.module == subpackage or imp.module.startswith(subpackage + ".")) and imp.top in banned
    ], key=_by_place)


def thread_users(tree: Tree) -> set[str]:
    """Modules of the tree that import a threading module (:data:`THREAD_MODULES`)."""
    return {imp.module for imp in tree.imports()
            if imp.top in THREAD_MODULES or imp.name in THREAD_NAMES
            or imp.target.startswith(("concurrent.futures.thread", "concurrent.futures.process"))}


_LOADED_BY = r"""
import importlib, json, sys
root, modules = sys.argv[1], sys.argv[2:]
sys.path.insert(0, root)
for name in modules:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def impure_closure(tree: Tree, subpackage: str = "hpcdist.runtime.scheduling", timeout: float = 120) -> list[str]:
    """Import every module of ``subpackage`` in a fresh interpreter; findings: mpi4py, a transport,
    or a threading-using module of the tree among the modules that this loaded."""
    modules = [m for m in tree.paths if m == subpackage or m.startswith(subpackage + ".")]
    proc = subprocess.run(
        [sys.executable, "-I", "-B", "-c", _LOADED_BY, str(tree.root.resolve()), *modules],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=tree.root,
    )
    if proc.returncode != 0:
        return [f"importing {subpackage} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"]
    loaded = set(json.loads(proc.stdout))
    transports = f"{tree.package}.transports"
    findings = [f"importing {subpackage} loads {m}" for m in sorted(loaded)
                if m == "mpi4py" or m.startswith("mpi4py.") or m.startswith(transports + ".")]
    findings += [f"importing {subpackage} loads {m}, which uses threads" for m in sorted(thread_users(tree) & loaded)]
    return findings


# -- 3. module size ----------------------------------------------------------------------------


def oversized(tree: Tree, limit: int = MAX_LINES) -> list[str]:
    """Modules longer than ``limit`` lines."""
    findings = []
    for module, path in tree.paths.items():
        n = len(path.read_text().splitlines())
        if n > limit:
            findings.append(f"{tree.rel(module)}: {n} lines (limit {limit})")
    return findings


# -- 4. private names across modules -------------------------------------------------------------


def _defined_private(tree: Tree) -> dict[str, set[str]]:
    """``_name`` -> modules that define it as an attribute: ``self._name = ...`` (or ``cls.``), a
    ``__slots__`` entry, or a class-body assignment or method."""
    defined: dict[str, set[str]] = defaultdict(set)
    for module, mod_ast in tree.asts.items():
        for node in ast.walk(mod_ast):
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in _flatten(targets):
                    if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                            and target.value.id in ("self", "cls") and is_private(target.attr)):
                        defined[target.attr].add(module)
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    for name in _class_names(item):
                        if is_private(name):
                            defined[name].add(module)
                for name in _inherited_private(tree, module, node):
                    defined[name].add(module)
    return defined


def _inherited_private(tree: Tree, module: str, cls: ast.ClassDef) -> set[str]:
    """Private attributes that ``cls`` inherits from base classes outside the tree (such as
    ``concurrent.futures.Future._state``): a subclass owns them as much as its own."""
    external = _external_names(tree, module)
    found: set[str] = set()
    for base in cls.bases:
        dotted = _dotted(base)
        if dotted is None:
            continue
        head, _, rest = dotted.partition(".")
        if head not in external:
            continue
        klass = _load(external[head] + ("." + rest if rest else ""))
        for k in getattr(klass, "__mro__", ())[:-1]:  # not object
            try:
                source = textwrap.dedent(inspect.getsource(k))
            except (OSError, TypeError):
                continue
            found |= {name for name in _self_and_class_names(ast.parse(source)) if is_private(name)}
    return found


def _external_names(tree: Tree, module: str) -> dict[str, str]:
    """Local name -> dotted name outside the tree that an import in ``module`` binds it to."""
    names: dict[str, str] = {}
    for node in ast.walk(tree.asts[module]):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not tree.ours(alias.name):
                    names[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module and not tree.ours(node.module):
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _load(dotted: str) -> object:
    """The object ``dotted`` names (a module attribute path), or None."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except Exception:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr, None)
        return obj
    return None


def _self_and_class_names(mod_ast: ast.Module) -> Iterator[str]:
    for node in ast.walk(mod_ast):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in _flatten(targets):
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
                    yield target.attr
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                yield from _class_names(item)


def _flatten(targets: list[ast.expr]) -> Iterator[ast.expr]:
    for target in targets:
        if isinstance(target, (ast.Tuple, ast.List)):
            yield from _flatten(list(target.elts))
        else:
            yield target


def _class_names(item: ast.stmt) -> Iterator[str]:
    """Names a class-body statement defines, ``__slots__`` entries included."""
    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield item.name
    elif isinstance(item, (ast.Assign, ast.AnnAssign)):
        targets = item.targets if isinstance(item, ast.Assign) else [item.target]
        for target in _flatten(targets):
            if isinstance(target, ast.Name):
                yield target.id
                if target.id == "__slots__" and item.value is not None:
                    for elt in ast.walk(item.value):
                        if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
                            yield elt.value


def _module_aliases(tree: Tree, module: str) -> dict[str, str]:
    """Local name -> module of the tree it is bound to by an import in ``module``."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree.asts[module]):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    aliases[head] = head
        elif isinstance(node, ast.ImportFrom):
            base = tree.resolve(module, node.module, node.level)
            for alias in node.names:
                if f"{base}.{alias.name}" in tree.paths:
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
    return {name: target for name, target in aliases.items() if target in tree.paths}


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def private_uses(tree: Tree) -> list[str]:
    """Uses of another module's ``_private`` names.

    * ``from hpcdist.x import _name``;
    * ``alias._name`` where ``alias`` is an imported module of the tree;
    * (heuristic) ``expr._name`` with ``expr`` not ``self``/``cls``/``super()``, in a module that
      never defines ``_name`` while other modules do (see :func:`_defined_private`);
      ``getattr``/``setattr``/``hasattr`` with a literal ``"_name"`` count as such a use.
    """
    defined = _defined_private(tree)
    findings = []
    for imp in tree.imports():
        if tree.ours(imp.target) and is_private(imp.name) and imp.target != imp.module:
            findings.append(f"{imp.where()}: imports private {imp.name} from {imp.target}")
    for module, mod_ast in tree.asts.items():
        aliases = _module_aliases(tree, module)
        for node in ast.walk(mod_ast):
            attr, value = _attribute_use(node)
            if attr is None or not is_private(attr):
                continue
            dotted = _dotted(value) if value is not None else None
            if dotted is not None:
                head, _, rest = dotted.partition(".")
                if head in aliases:
                    target = aliases[head] + ("." + rest if rest else "")
                    if target in tree.paths:
                        if target != module:
                            findings.append(f"{module}:{node.lineno}: uses private {attr} of module {target}")
                        continue
            if _is_self(value) or (module, attr) in PRIVATE_ALLOWED:
                continue
            owners = defined.get(attr, set())
            if owners and module not in owners:
                findings.append(f"{module}:{node.lineno}: uses {attr}, an attribute private to "
                                f"{', '.join(sorted(owners))}")
    return sorted(findings, key=_by_place)


def _by_place(finding: str) -> tuple[str, int, str]:
    module, line, rest = finding.split(":", 2)
    return module, int(line), rest


def _attribute_use(node: ast.AST) -> tuple[str | None, ast.expr | None]:
    if isinstance(node, ast.Attribute):
        return node.attr, node.value
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
        return node.args[1].value, node.args[0]
    return None, None


def _is_self(value: ast.expr | None) -> bool:
    if isinstance(value, ast.Name):
        return value.id in ("self", "cls")
    return (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
            and value.func.id in ("super", "type"))


# -- 5. one importer per dependency --------------------------------------------------------------


def foreign_importers(tree: Tree, rules: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """Imports of a module of :data:`SINGLE_IMPORTERS` outside the modules (or packages) allowed it."""
    rules = SINGLE_IMPORTERS if rules is None else rules
    findings = []
    for imp in tree.imports():
        owners = rules.get(imp.top)
        if owners is None:
            continue
        if not any(imp.module == o or imp.module.startswith(o + ".") for o in owners):
            how = "dynamically imports" if imp.dynamic else "imports"
            findings.append(f"{imp.where()}: {how} {imp.target} (only {', '.join(owners)} may)")
    return sorted(findings, key=_by_place)


def unparsed(tree: Tree) -> list[str]:
    """Modules that are not valid Python (every other check treats them as empty)."""
    return [f"{tree.rel(m)}: does not parse: {error}" for m, error in tree.unparsed.items()]


CHECKS = {
    "modules parse": unparsed,
    "import cycles": import_cycles,
    "lazy imports": lazy_imports,
    "module size": oversized,
    "private names": private_uses,
    "single importers": foreign_importers,
    "pure scheduling (AST)": impure_imports,
    "pure scheduling (loaded)": impure_closure,
    "import each module": import_each,
}


def main(argv: list[str]) -> int:
    """Print every finding of every check on the tree at ``argv[0]`` (default: this checkout)."""
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[2]
    tree = Tree(root)
    total = 0
    for title, check in CHECKS.items():
        findings = check(tree)
        total += len(findings)
        print(f"== {title}: {len(findings)}")
        for finding in findings:
            print(f"   {finding}")
    return 1 if total else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
