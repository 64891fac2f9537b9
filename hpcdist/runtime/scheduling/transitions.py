"""The transition log of the scheduler state: the most recent task transitions and their causes.

Every transition of a task is one ``(time, key, from_state, to_state, stimulus_id)`` entry;
``stimulus_id`` is the id of the event that caused it, which :meth:`TransitionLog.story` turns into
the name of the causing message (see :func:`~hpcdist.runtime.scheduling.vocabulary.stimulus_name`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from hpcdist.errors import InvalidTransition
from hpcdist.runtime.scheduling.vocabulary import Stimulus, stimulus_name

__all__ = ["LOG_MAX", "TransitionLog"]

#: Most recent transitions kept in the log (older ones are dropped): a few thousand tasks'
#: worth, for the history in error messages, and ~2 MB whatever the run's size.
LOG_MAX = 10_000

Entry = tuple[float, str, str, str, Stimulus]


class TransitionLog(deque):
    """A bounded deque of ``(time, key, from_state, to_state, stimulus_id)``, oldest first.

    The state appends to it (``append``, the deque's own); the rest of this class only reads.

    Args:
        entries: Initial entries.
        maxlen: How many of the most recent entries are kept.
    """

    __slots__ = ()

    def __init__(self, entries: Iterable[Entry] = (), maxlen: int = LOG_MAX) -> None:
        super().__init__(entries, maxlen)

    def history(self, key: str) -> list[tuple[float, str, str]]:
        """Return ``(time, from_state, to_state)`` of the transitions of ``key`` still in the log."""
        return [(t, a, b) for t, k, a, b, _ in self if k == key]

    def story(self, key: str) -> list[tuple[float, str, str, str]]:
        """Return ``(time, from_state, to_state, cause)`` of the transitions of ``key`` still in the
        log; ``cause`` names the message that caused each (see :func:`stimulus_name`)."""
        return [(t, a, b, stimulus_name(c)) for t, k, a, b, c in self if k == key]

    def illegal(self, key: str, state: str, to: str, stimulus: Stimulus) -> InvalidTransition:
        """Return the error for the illegal transition ``state -> to`` of ``key``, with its history."""
        steps = ", ".join(f"t={t:g} {a}->{b}" for t, a, b in self.history(key)) or "none"
        cause = stimulus_name(stimulus) or "unnamed"
        return InvalidTransition(
            f"task {key!r}: illegal transition {state} -> {to}; its history: {steps}; caused by {cause}"
        )
