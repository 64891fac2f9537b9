"""What a task's cache key knows about its code: everything it can reach in the user's project.

Starting from the task's callable, :func:`reachable_code` follows, transitively:

* the function's own source (its bytecode and constants when there is no source), its
  default arguments and the cells of its closure; nested functions and lambdas are part of
  the source;
* every global name its code (and the code nested in it) uses, looked up in the function's
  module: a function or class defined in a project module is followed (a class: its source,
  then every function defined in it); a project module is hashed as its whole source file and
  its own namespace is followed for project functions, classes and modules defined in *other*
  files; a plain constant (None, bool, int, float, complex, str, bytes, and tuples, lists,
  sets and dicts of those, up to 10 000 elements) is hashed by value;
* modules imported inside the function (``import helpers`` in its body): followed as above if
  already imported, else (rank 0 does not import them) their source file alone is hashed,
  found on ``sys.path`` without running it;
* ``functools.partial`` objects (function and arguments), ``__wrapped__`` of decorated
  functions, bound methods and instances of project classes (their class).

A *project module* is one whose source file lies under one of the pipeline's import folders
(the spec's folder and ``environment.workdir``) and not in a ``site-packages`` or
``dist-packages`` folder or the standard library. Anything else (the standard library,
installed packages, C extensions, builtins, values of other types such as a global numpy
array or an instance's attributes) is not hashed: upgrading a package or changing data read
at run time does not change the key. The task field ``version`` is mixed into the key to force
a recompute in such cases.
"""

from __future__ import annotations

import dis
import functools
import hashlib
import inspect
import os
import sys
import sysconfig
import types
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

__all__ = ["reachable_code", "code_identity"]

#: containers larger than this are not hashed by value (a big table is data, not code)
MAX_CONSTANT_ITEMS = 10_000
_SCALARS = (type(None), bool, int, float, complex, str, bytes)


def _excluded_roots() -> list[str]:
    roots = set()
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(name)
        if path:
            roots.add(os.path.realpath(path))
    return sorted(roots)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class _Walker:
    def __init__(self, project_dirs: Sequence[str]) -> None:
        self.roots = [os.path.realpath(d) for d in project_dirs if d]
        self.excluded = _excluded_roots()
        self.seen: set[int] = set()
        self.files: dict[str, str] = {}  # module name -> realpath, for project modules
        self.parts: list[tuple[str, bytes]] = []  # (what, bytes), in walk order
        self.covered: list[str] = []

    # ---- what counts as the user's project ------------------------------------------------

    def project_file(self, module_name: str | None) -> str | None:
        if not module_name:
            return None
        if module_name in self.files:
            return self.files[module_name]
        module = sys.modules.get(module_name)
        path = getattr(module, "__file__", None) if module is not None else None
        real = None
        if path and path.endswith(".py"):
            real = os.path.realpath(path)
            parts = Path(real).parts
            if "site-packages" in parts or "dist-packages" in parts or \
                    any(_under(real, r) for r in self.excluded) or not any(_under(real, r) for r in self.roots):
                real = None
        self.files[module_name] = real  # type: ignore[assignment]
        return real

    # ---- the walk -----------------------------------------------------------------------

    def add(self, what: str, data: bytes) -> None:
        self.parts.append((what, data))
        self.covered.append(what)

    def visit(self, obj: Any, *, top: bool = False) -> None:
        if id(obj) in self.seen:
            return
        self.seen.add(id(obj))
        if isinstance(obj, functools.partial):
            self.visit(obj.func, top=top)
            self.constant("partial args", (obj.args, obj.keywords))
            return
        if isinstance(obj, types.MethodType):
            self.visit(obj.__func__, top=top)
            return
        if isinstance(obj, types.FunctionType):
            self.function(obj, top)
        elif isinstance(obj, type):
            self.klass(obj, top)
        elif isinstance(obj, types.ModuleType):
            self.module(obj)
        elif top or self.project_file(getattr(type(obj), "__module__", None)):
            self.visit(type(obj))  # a callable instance, or an instance of a project class

    def function(self, fn: types.FunctionType, top: bool) -> None:
        wrapped = getattr(fn, "__wrapped__", None)
        if wrapped is not None:
            self.visit(wrapped)
        if not top and not self.project_file(fn.__module__):
            return
        name = f"{fn.__module__}:{fn.__qualname__}"
        try:
            body = inspect.getsource(fn).encode()
        except (OSError, TypeError):
            body = _code_bytes(fn.__code__)
        self.add(f"function {name}", body)
        for value in (fn.__defaults__ or ()) + tuple((fn.__kwdefaults__ or {}).values()):
            self.value(f"{name} default", value)
        for cell in fn.__closure__ or ():
            try:
                self.value(f"{name} closure", cell.cell_contents)
            except ValueError:  # an empty cell
                pass
        self.names(fn.__code__, fn.__globals__, name)

    def names(self, code: types.CodeType, namespace: dict[str, Any], owner: str) -> None:
        for name in sorted(set(_all_names(code))):
            if name in namespace:
                self.value(f"{owner} global {name}", namespace[name], name)
        for name in sorted(set(_local_imports(code))):  # ``import helpers`` inside the function
            if name in sys.modules:
                self.visit(sys.modules[name])
            else:  # not imported here yet: its source file, found without running it
                self.source_file(name)

    def source_file(self, name: str) -> None:
        path = _find_source(name)
        if path is None or name in self.files:
            return
        real = os.path.realpath(path)
        parts = Path(real).parts
        if "site-packages" in parts or "dist-packages" in parts or any(_under(real, r) for r in self.excluded) \
                or not any(_under(real, r) for r in self.roots):
            return
        self.files[name] = real
        try:
            self.add(f"module {name}", Path(real).read_bytes())
        except OSError:
            pass


    def value(self, what: str, value: Any, name: str | None = None) -> None:
        if isinstance(value, (types.FunctionType, type, types.ModuleType, functools.partial, types.MethodType)):
            self.visit(value)
        elif _is_constant(value):
            self.constant(what, value)
        elif self.project_file(getattr(type(value), "__module__", None)):
            self.visit(type(value))

    def constant(self, what: str, value: Any) -> None:
        if _is_constant(value):
            self.add(what, repr(_canonical(value)).encode())

    def klass(self, cls: type, top: bool) -> None:
        if not top and not self.project_file(cls.__module__):
            return
        name = f"{cls.__module__}:{cls.__qualname__}"
        try:
            self.add(f"class {name}", inspect.getsource(cls).encode())
        except (OSError, TypeError):
            self.add(f"class {name}", name.encode())
        module = sys.modules.get(cls.__module__)
        namespace = vars(module) if module is not None else {}
        for attr, member in sorted(vars(cls).items()):
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if isinstance(member, property):
                members: Iterable[Any] = (member.fget, member.fset, member.fdel)
            else:
                members = (member,)
            for m in members:
                if isinstance(m, types.FunctionType):
                    self.seen.add(id(m))  # its source is part of the class's source
                    self.names(m.__code__, m.__globals__ or namespace, f"{name}.{attr}")
        for base in cls.__mro__[1:]:
            self.visit(base)

    def module(self, module: types.ModuleType) -> None:
        path = self.project_file(module.__name__)
        if path is None:
            return
        try:
            self.add(f"module {module.__name__}", Path(path).read_bytes())
        except OSError:
            self.add(f"module {module.__name__}", module.__name__.encode())
        for attr, value in sorted(vars(module).items(), key=lambda kv: kv[0]):
            if attr.startswith("__"):
                continue
            owner = getattr(value, "__module__", None) if not isinstance(value, types.ModuleType) else value.__name__
            if owner != module.__name__ and isinstance(value, (types.FunctionType, type, types.ModuleType)):
                self.visit(value)  # defined in another file of the project (or not followed)


def _all_names(code: types.CodeType) -> Iterable[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _all_names(const)


def _local_imports(code: types.CodeType) -> Iterable[str]:
    """Absolute module names imported by ``code`` and the code nested in it."""

    for ins in dis.get_instructions(code):
        if ins.opname == "IMPORT_NAME" and isinstance(ins.argval, str):
            yield ins.argval
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _local_imports(const)


def _find_source(name: str) -> str | None:
    """The ``.py`` file of module ``name`` on ``sys.path``, found without importing anything."""
    from importlib.machinery import PathFinder

    parts = name.split(".")
    spec = PathFinder.find_spec(parts[0], sys.path)
    for part in parts[1:]:
        if spec is None or not spec.submodule_search_locations:
            return None
        spec = PathFinder.find_spec(part, list(spec.submodule_search_locations))
    origin = getattr(spec, "origin", None)
    return origin if isinstance(origin, str) and origin.endswith(".py") else None


def _code_bytes(code: types.CodeType) -> bytes:
    parts = [code.co_code, repr(code.co_names).encode()]
    for const in code.co_consts:
        parts.append(_code_bytes(const) if isinstance(const, types.CodeType) else repr(const).encode())
    return b"\0".join(parts)


def _count(value: Any, budget: list[int]) -> bool:
    budget[0] -= 1
    if budget[0] < 0:
        return False
    if isinstance(value, _SCALARS):
        return True
    if isinstance(value, (tuple, list, set, frozenset)):
        return all(_count(v, budget) for v in value)
    if isinstance(value, dict):
        return all(_count(k, budget) and _count(v, budget) for k, v in value.items())
    return False


def _is_constant(value: Any) -> bool:
    return _count(value, [MAX_CONSTANT_ITEMS])


def _canonical(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return (type(value).__name__, sorted(repr(_canonical(v)) for v in value))
    if isinstance(value, dict):
        return ("dict", sorted((repr(_canonical(k)), repr(_canonical(v))) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_canonical(v) for v in value])
    return value


def reachable_code(fn: Callable[..., Any], project_dirs: Sequence[str]) -> tuple[str, list[str]]:
    """The sha256 of everything ``fn`` can reach in the project's code (see the module doc).

    Args:
        fn: a task's callable.
        project_dirs: the folders whose modules count as the user's project.

    Returns:
        ``(hex digest, what was hashed)``; the second item names each function, class,
        module and constant, in walk order (for rank 0's log).
    """
    walker = _Walker(project_dirs)
    walker.visit(fn, top=True)
    if not walker.parts:  # a builtin or C function: tied to the interpreter
        walker.add("builtin", f"{getattr(fn, '__qualname__', repr(fn))} {sys.version_info[:2]}".encode())
    h = hashlib.sha256()
    for what, data in walker.parts:
        h.update(f"{what}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest(), walker.covered


def code_identity(fn: Callable[..., Any], project_dirs: Sequence[str], version: str | None = None) -> str:
    """``module:qualname:HASH``: the callable's name plus :func:`reachable_code` (and ``version``)."""
    module = getattr(fn, "__module__", None) or ""
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    digest, _ = reachable_code(fn, project_dirs)
    if version is not None:
        digest = hashlib.sha256(f"{digest}\0version\0{version}".encode()).hexdigest()
    return f"{module}:{qualname}:{digest[:16]}"
