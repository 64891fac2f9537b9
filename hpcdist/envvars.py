"""Reading hpcdist's settings from environment variables (seconds, counts), with one error for a bad value."""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

from hpcdist.errors import HpcdistError


def env_seconds(name: str, default: float, environ: Mapping[str, str] | None = None) -> float:
    """``name``'s value as a positive, finite number of seconds, or ``default`` when unset or empty.

    Raises:
        HpcdistError: the variable is set but is not a positive, finite number of seconds.
    """
    return _read(name, default, environ, float, lambda v: 0 < v < float("inf"), "a positive number of seconds")


def env_count(name: str, default: int, environ: Mapping[str, str] | None = None) -> int:
    """``name``'s value as a positive whole number, or ``default`` when unset or empty.

    Raises:
        HpcdistError: the variable is set but is not a positive whole number.
    """
    return _read(name, default, environ, int, lambda v: v >= 1, "a positive whole number")


def _read(name: str, default: Any, environ: Mapping[str, str] | None, parse: Callable[[str], Any],
          ok: Callable[[Any], bool], expected: str) -> Any:
    text = (os.environ if environ is None else environ).get(name, "").strip()
    if not text:
        return default
    try:
        value = parse(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise HpcdistError(f"{name}={text!r}: expected {expected}")
    return value
