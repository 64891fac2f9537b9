"""Reading hpcdist's settings from environment variables (seconds, counts), with one error for a bad value."""

from __future__ import annotations

import os
from typing import Mapping

from hpcdist.errors import HpcdistError


def env_seconds(name: str, default: float, environ: Mapping[str, str] | None = None) -> float:
    """``name``'s value as a positive, finite number of seconds, or ``default`` when unset or empty.

    Raises:
        HpcdistError: the variable is set but is not a positive, finite number of seconds.
    """
    text = (os.environ if environ is None else environ).get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise HpcdistError(f"{name}={text!r}: expected a positive number of seconds")
    return value


def env_count(name: str, default: int, environ: Mapping[str, str] | None = None) -> int:
    """``name``'s value as a positive whole number, or ``default`` when unset or empty.

    Raises:
        HpcdistError: the variable is set but is not a positive whole number.
    """
    text = (os.environ if environ is None else environ).get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise HpcdistError(f"{name}={text!r}: expected a positive whole number")
    return value
