"""Rank 0's progress display: a live bar on a terminal, periodic plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

import click

from hpcdist.pipeline.graph import TERMINAL

__all__ = ["Progress", "summary"]

#: seconds between plain progress lines when the output is not a terminal (batch logs)
LINE_INTERVAL = 10.0


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
        interactive: force the bar (True) or plain lines (False); default: ``stream.isatty()``.
        interval: seconds between plain lines.
    """

    def __init__(self, stream: IO[str] | None = None, interactive: bool | None = None,
                 interval: float = LINE_INTERVAL) -> None:
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.interval = interval
        self._last_line = 0.0
        self._last_text = ""
        self._bar: Any = None

    def __call__(self, counts: dict[str, int], running: int, elapsed: float) -> None:
        finished, total, text = summary(counts, running, elapsed)
        if self.interactive:
            if self._bar is None:
                self._bar = click.progressbar(length=max(total, 1), file=self.stream, show_eta=False,
                                              show_pos=False, item_show_func=lambda s: s)
                self._bar.__enter__()
            self._bar.length = max(total, 1)
            self._bar.update(finished - self._bar.pos, text)
            return
        now = time.monotonic()
        if text != self._last_text and now - self._last_line >= self.interval:
            self.stream.write(f"hpcdist: progress: {text}\n")
            self.stream.flush()
            self._last_line, self._last_text = now, text

    def close(self, counts: dict[str, int], running: int, elapsed: float) -> None:
        """Finish the bar, or print the final plain line."""
        _, _, text = summary(counts, running, elapsed)
        if self._bar is not None:
            self._bar.update(0, text)
            self._bar.__exit__(None, None, None)
            self._bar = None
        else:
            self.stream.write(f"hpcdist: progress: {text}\n")
            self.stream.flush()
