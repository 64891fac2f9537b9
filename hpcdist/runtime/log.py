"""The runtime's messages on stderr, through :mod:`logging`.

Modules log with ``logging.getLogger(__name__)``; the ``hpcdist`` logger writes the text of
each record (warnings and above) to the process's stderr of the moment, one line per
record, flushed at once: on MPI that is the rank's log, which a launcher collects. It does
not propagate, so a program's own logging configuration neither repeats nor hides these
lines; configure the ``hpcdist`` logger to redirect them.
"""

from __future__ import annotations

import logging
import sys


class _CurrentStderr(logging.Handler):
    """Writes to ``sys.stderr`` as it is when the record comes (tests and daemons swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - as logging.StreamHandler
            self.handleError(record)


def _install() -> None:
    package = logging.getLogger("hpcdist")
    if not any(isinstance(h, _CurrentStderr) for h in package.handlers):
        handler = _CurrentStderr(logging.WARNING)
        handler.setFormatter(logging.Formatter("%(message)s"))
        package.addHandler(handler)
        package.propagate = False
        if package.level == logging.NOTSET:
            package.setLevel(logging.WARNING)


_install()


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` for a module of hpcdist (the stderr handler installed)."""
    return logging.getLogger(name)
