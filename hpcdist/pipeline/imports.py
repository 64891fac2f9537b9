"""Importing a task's callable by name, on the submit host (validation) and on workers.

Validation imports the user's task modules in a child process (:func:`check_callables`), with
a time limit, so a module that calls ``sys.exit``/``os._exit``, crashes or blocks at import is
reported as a problem of the spec instead of ending or hanging ``validate``, ``submit`` or
``run``.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from typing import Any, Callable, Iterable, Sequence

__all__ = [
    "add_import_dirs",
    "resolve_callable",
    "check_callable",
    "check_callables",
    "import_timeout",
    "IMPORT_TIMEOUT_ENV",
    "DEFAULT_IMPORT_TIMEOUT",
]

#: environment variable: seconds the import check of a spec's task modules may take
IMPORT_TIMEOUT_ENV = "HPCDIST_IMPORT_TIMEOUT"
#: the default of :data:`IMPORT_TIMEOUT_ENV`
DEFAULT_IMPORT_TIMEOUT = 60.0


def add_import_dirs(dirs: Sequence[str]) -> None:
    """Put ``dirs`` first on ``sys.path`` (once each), so task modules beside the spec import."""
    for d in reversed(list(dirs)):
        if d not in sys.path:
            sys.path.insert(0, d)


def resolve_callable(module: str, attr: str, import_dirs: Sequence[str] = ()) -> Callable[..., Any]:
    """Import ``module`` and return its attribute ``attr`` (dots walk nested attributes).

    Raises:
        ImportError, AttributeError: the module or attribute does not exist; ImportError also
            when the module calls ``sys.exit`` at import (so a worker fails the task, not itself).
        TypeError: the attribute is not callable.
    """
    add_import_dirs(import_dirs)
    try:
        obj: Any = importlib.import_module(module)
    except SystemExit as exc:
        raise ImportError(f"importing {module!r} called sys.exit({exc.code!r})") from None
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{module}:{attr} is not callable (it is {type(obj).__name__})")
    return obj


def check_callable(module: str, attr: str, import_dirs: Sequence[str] = ()) -> str | None:
    """None when ``module:attr`` imports and is callable, else a one-line reason (in this process)."""
    try:
        resolve_callable(module, attr, import_dirs)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name != module and not module.startswith(exc.name + "."):
            return f"importing {module!r} failed: ModuleNotFoundError: {exc}"  # a module it imports is missing
        return f"cannot import module {module!r} ({exc}); is it on the path? (searched first: " + \
            ", ".join(import_dirs or ["the spec's folder"]) + ")"
    except AttributeError:
        return f"module {module!r} has no attribute {attr!r}"
    except TypeError as exc:
        return str(exc)
    except ImportError as exc:
        if "called sys.exit" in str(exc):
            return f"{exc} at import; a task module must not exit when it is imported"
        return f"importing {module!r} failed: ImportError: {exc}"
    except Exception as exc:  # noqa: BLE001 - importing user code can raise anything
        return f"importing {module!r} failed: {type(exc).__name__}: {_one_line(str(exc))}"
    except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt or the like, raised by the module
        return f"importing {module!r} raised {type(exc).__name__} at import"
    return None


def import_timeout() -> float:
    """Seconds allowed for the import check (:data:`IMPORT_TIMEOUT_ENV`, default 60).

    Raises:
        ValueError: when the variable is set to something other than a positive number.
    """
    text = os.environ.get(IMPORT_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_IMPORT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ValueError(f"{IMPORT_TIMEOUT_ENV}={text!r}: expected a number of seconds > 0")
    return value


def check_callables(
    targets: Iterable[tuple[str, str]], import_dirs: Sequence[str] = (), timeout: float | None = None
) -> dict[tuple[str, str], str | None]:
    """Check that every ``(module, attr)`` imports and is callable, in a child process.

    The child gets this process's ``sys.path`` with ``import_dirs`` first. A module that calls
    ``sys.exit`` or ``os._exit``, dies of a signal, or does not finish importing within
    ``timeout`` seconds gets a one-line reason; the child (and anything it started) is killed
    at the time limit. Inside an MPI world (mpi4py.MPI already imported here), where starting
    a process is unsafe, the check runs in this process (``sys.exit`` is still caught).

    Args:
        targets: the callables, as ``(module, attribute path)``.
        import_dirs: folders searched first (the spec's workdir and folder).
        timeout: seconds for the whole check of one module (default: :func:`import_timeout`).

    Returns:
        ``{(module, attr): None or a one-line reason}`` for every target.

    Raises:
        ValueError: for a bad :data:`IMPORT_TIMEOUT_ENV`.
    """
    todo = list(dict.fromkeys(targets))
    limit = import_timeout() if timeout is None else timeout
    if "mpi4py.MPI" in sys.modules:
        return {t: check_callable(*t, import_dirs) for t in todo}
    results: dict[tuple[str, str], str | None] = {}
    while todo:
        done, failed_module, reason = _run_child(todo, import_dirs, limit)
        results.update(done)
        todo = [t for t in todo if t not in results]
        if failed_module is not None:
            for t in todo:
                if t[0] == failed_module:
                    results[t] = reason
            todo = [t for t in todo if t not in results]
        elif todo:  # the child ended without a word about these: never loop for ever
            for t in todo:
                results[t] = reason or f"importing {t[0]!r} could not be checked"
            todo = []
    return results


_CHILD = """
import json, sys
request = json.loads(sys.stdin.readline())
sys.path[:] = request["path"]
sys.stdin = open("/dev/null")
from hpcdist.pipeline.imports import check_callable
with open(request["out"], "a", encoding="utf-8") as out:
    for module, attr in request["targets"]:
        out.write(json.dumps({"start": module}) + "\\n")
        out.flush()
        error = check_callable(module, attr, request["dirs"])
        out.write(json.dumps({"target": [module, attr], "error": error}) + "\\n")
        out.flush()
"""


def _run_child(
    targets: list[tuple[str, str]], import_dirs: Sequence[str], timeout: float
) -> tuple[dict[tuple[str, str], str | None], str | None, str | None]:
    """Run one child over ``targets`` (grouped by module): ``(results, module that ended the
    child or None, the reason)``."""
    first = {m: i for i, (m, _) in reversed(list(enumerate(targets)))}
    ordered = sorted(targets, key=lambda t: first[t[0]])
    path = list(dict.fromkeys([*import_dirs, *sys.path]))
    fd, out_path = tempfile.mkstemp(prefix="hpcdist-import-", suffix=".jsonl")
    os.close(fd)
    try:
        request = json.dumps({"path": path, "dirs": list(import_dirs), "out": out_path, "targets": ordered}) + "\n"
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True,
        )
        timed_out = False
        try:
            _, err = proc.communicate(request.encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            _, err = proc.communicate()
        finally:
            _kill_group(proc.pid)  # whatever the module started in the background
        results: dict[tuple[str, str], str | None] = {}
        current: str | None = None
        with open(out_path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a half-written last line
                if "start" in record:
                    current = record["start"]
                elif "target" in record:
                    results[tuple(record["target"])] = record["error"]  # type: ignore[index]
                    current = None
    finally:
        os.unlink(out_path)
    if len(results) == len(targets):
        return results, None, None
    tail = _last_line(err)
    if current is None:
        return results, None, f"the import check could not start (exit status {proc.returncode}){tail}"
    if timed_out:
        reason = (f"importing {current!r} did not finish within {timeout:g} s (does it block at import?); "
                  f"if it is only slow, raise {IMPORT_TIMEOUT_ENV}")
    elif proc.returncode < 0:
        name = _signal_name(-proc.returncode)
        reason = f"importing {current!r} killed the process with signal {name}{tail}"
    else:
        reason = (f"importing {current!r} ended the process with exit status {proc.returncode} "
                  f"(os._exit() or a crash at import){tail}")
    return results, current, reason


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _last_line(err: bytes | None) -> str:
    lines = [line.strip() for line in (err or b"").decode("utf-8", "replace").splitlines() if line.strip()]
    return f": {_one_line(lines[-1])[:200]}" if lines else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())
