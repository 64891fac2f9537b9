"""Rank 0's progress display: a live bar on a terminal, periodic plain lines otherwise."""

from __future__ import annotations

import os
import sys
import time
from typing import IO

from hpcdist.pipeline.graph import TERMINAL

__all__ = ["Progress", "summary", "on_terminal", "TTY_ENV"]

#: seconds between plain progress lines when the output is not a terminal (batch logs)
LINE_INTERVAL = 10.0
#: set to 1 by ``hpcdist run`` when its stderr is a terminal: rank 0 under mpiexec has none
#: (mpiexec forwards its output through a pipe), yet the bar reaches the user's terminal
TTY_ENV = "HPCDIST_TTY"
#: the bar: characters, and seconds between redraws at most
BAR_WIDTH = 30
BAR_INTERVAL = 0.1


def on_terminal(stream: IO[str]) -> bool:
    """Whether ``stream`` is a terminal, or ends on one (``HPCDIST_TTY=1`` from the launcher)."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):
        return False
    return os.environ.get(TTY_ENV) == "1"


def summary(counts: dict[str, int], running: int, elapsed: float) -> tuple[int, int, str]:
    """``(finished, total, text)`` for the task counts of a run."""
    total = sum(counts.values())  # an unexpanded definition counts as one task
    finished = sum(counts.get(k, 0) for k in TERMINAL)
    ok = counts.get("done", 0) + counts.get("cached", 0)
    parts = [f"done {ok}/{total}"]
    if counts.get("cached"):
        parts.append(f"reused {counts['cached']}")
    parts.append(f"failed {counts.get('failed', 0)}")
    if counts.get("skipped"):
        parts.append(f"skipped {counts['skipped']}")
    parts.append(f"running {running}")
    parts.append(f"elapsed {_clock(elapsed)}")
    if 0 < finished < total and elapsed > 0:
        parts.append(f"eta {_clock(elapsed / finished * (total - finished))}")
    return finished, total, ", ".join(parts)


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """Callable progress sink for :class:`~hpcdist.pipeline.runner.Runner`.

    Args:
        stream: where to write (default stderr).
        interactive: force the bar (True) or plain lines (False); default: :func:`on_terminal`.
        interval: seconds between plain lines.
    """

    def __init__(self, stream: IO[str] | None = None, interactive: bool | None = None,
                 interval: float = LINE_INTERVAL) -> None:
        self.stream = stream or sys.stderr
        self.interactive = on_terminal(self.stream) if interactive is None else interactive
        self.interval = interval
        self._last_line = 0.0
        self._last_text = ""
        self._drawn = False
        self._drawn_at = 0.0
        self._width = 0  # length of the bar line on screen, to blank out a longer old one

    def __call__(self, counts: dict[str, int], running: int, elapsed: float) -> None:
        finished, total, text = summary(counts, running, elapsed)
        now = time.monotonic()
        if self.interactive:
            if text != self._last_text and now - self._drawn_at >= BAR_INTERVAL:
                self._draw(finished, total, text)
                self._drawn_at, self._last_text = now, text
            return
        if text != self._last_text and now - self._last_line >= self.interval:
            self.stream.write(f"hpcdist: progress: {text}\n")
            self.stream.flush()
            self._last_line, self._last_text = now, text

    def _draw(self, finished: int, total: int, text: str) -> None:
        filled = BAR_WIDTH * finished // max(total, 1)
        line = f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {100 * finished // max(total, 1):3d}%  {text}"
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width, self._drawn = len(line), True

    def close(self, counts: dict[str, int], running: int, elapsed: float) -> None:
        """Finish the bar, or print the final plain line."""
        finished, total, text = summary(counts, running, elapsed)
        if self.interactive:
            self._draw(finished, total, text)
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
        else:
            self.stream.write(f"hpcdist: progress: {text}\n")
            self.stream.flush()
