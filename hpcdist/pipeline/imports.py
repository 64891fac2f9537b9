"""Importing a task's callable by name, on the submit host (validation) and on workers."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Sequence


def add_import_dirs(dirs: Sequence[str]) -> None:
    """Put ``dirs`` first on ``sys.path`` (once each), so task modules beside the spec import."""
    for d in reversed(list(dirs)):
        if d not in sys.path:
            sys.path.insert(0, d)


def resolve_callable(module: str, attr: str, import_dirs: Sequence[str] = ()) -> Callable[..., Any]:
    """Import ``module`` and return its attribute ``attr`` (dots walk nested attributes).

    Raises:
        ImportError, AttributeError: the module or attribute does not exist.
        TypeError: the attribute is not callable.
    """
    add_import_dirs(import_dirs)
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{module}:{attr} is not callable (it is {type(obj).__name__})")
    return obj


def check_callable(module: str, attr: str, import_dirs: Sequence[str] = ()) -> str | None:
    """None when ``module:attr`` imports and is callable, else a one-line reason."""
    try:
        resolve_callable(module, attr, import_dirs)
    except ModuleNotFoundError as exc:
        return f"cannot import module {module!r} ({exc}); is it on the path? (searched first: " + \
            ", ".join(import_dirs or ["the spec's folder"]) + ")"
    except AttributeError:
        return f"module {module!r} has no attribute {attr!r}"
    except TypeError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - importing user code can raise anything
        return f"importing {module!r} failed: {type(exc).__name__}: {exc}"
    return None
