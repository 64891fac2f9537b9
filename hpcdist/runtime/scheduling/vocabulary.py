"""The scheduler's vocabulary: task states, the transition table, task specs and events.

Plain data, no behaviour: :mod:`hpcdist.runtime.scheduling.state` consumes the events and returns the
instructions listed in :data:`INSTRUCTIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from hpcdist.errors import HpcdistError

#: Instruction kinds ``SchedulerState.handle()`` returns:
#: ("compute", rank, key, {dep: [holders, same host as rank first]}), ("free", rank, [keys]),
#: ("steal", rank, key), ("memory", key), ("erred", key, error), ("cancelled", key).
#: "steal" is also sent when a queued task is no longer wanted (cancelled, released, or one of
#: its inputs was lost), so the worker drops it if it has not started; the reply is then ignored.
INSTRUCTIONS = ("compute", "free", "steal", "memory", "erred", "cancelled")

RELEASED, WAITING, READY, PROCESSING = "released", "waiting", "ready", "processing"
MEMORY, ERRED, CANCELLED, FORGOTTEN = "memory", "erred", "cancelled", "forgotten"

#: The one table of legal transitions; anything else raises :class:`InvalidTransition`.
ALLOWED_TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        (FORGOTTEN, RELEASED),  # a key becomes known
        (RELEASED, WAITING),
        (RELEASED, READY),
        (RELEASED, MEMORY),  # scattered data
        (RELEASED, ERRED),  # a dependency is missing/erred, or no worker may run it
        (RELEASED, CANCELLED),  # a dependency was cancelled
        (RELEASED, FORGOTTEN),
        (WAITING, READY),
        (WAITING, ERRED),
        (WAITING, CANCELLED),
        (WAITING, RELEASED),  # nobody needs it any more, lineage kept
        (WAITING, FORGOTTEN),
        (READY, PROCESSING),
        (READY, ERRED),  # restrictions match no live worker, or no worker left
        (PROCESSING, MEMORY),
        (PROCESSING, ERRED),
        (PROCESSING, READY),  # retry, steal, or its worker died
        (PROCESSING, RELEASED),  # an input was lost, or nobody needs it any more
        (PROCESSING, CANCELLED),
        (PROCESSING, FORGOTTEN),
        (MEMORY, RELEASED),  # data freed (lineage kept) or lost with its worker
        (MEMORY, ERRED),  # scattered data lost with its worker
        (MEMORY, FORGOTTEN),
        (ERRED, FORGOTTEN),
        (CANCELLED, RELEASED),  # submitted again
        (CANCELLED, FORGOTTEN),
    }
)

#: state -> the states it may move to (the same table, indexed for the state machine's hot path)
NEXT_STATES: dict[str, frozenset[str]] = {
    a: frozenset(b for x, b in ALLOWED_TRANSITIONS if x == a) for a, _ in ALLOWED_TRANSITIONS
}

PENDING = frozenset({WAITING, READY, PROCESSING})
# a dependent in one of these states keeps its dependencies' records (lineage)
RETAINING = PENDING | {MEMORY, RELEASED}


class InvalidTransition(HpcdistError):
    """A task was asked to make a transition the table does not allow (a scheduler bug)."""


class DependencyMissing(HpcdistError):
    """A task depends on a key the scheduler does not know (or on itself, through a cycle)."""


class TaskSpec(NamedTuple):
    """What the scheduler needs to know about one task.

    Immutable, built with keywords or positionally. A named tuple rather than a frozen
    dataclass: the client builds one per task, and building this costs about a third of a
    frozen dataclass (0.35 against 1.1 µs, positional). Equality is a dataclass's: a spec
    equals only a spec with equal fields, never a plain tuple. Read it by field name; do
    not unpack or iterate it (its fields may grow).

    Attributes:
        key: Unique, pure key: the same key always means the same result.
        deps: Keys whose results the task needs.
        fn_name: Function name, for the per-function running-average duration.
        workers: Ranks allowed to run the task, or None for any.
        allow_other_workers: If True, ``workers`` is only a preference.
        retries: How many times the task is run again after it raises.
    """

    key: str
    deps: tuple[str, ...] = ()
    fn_name: str = ""
    workers: frozenset[int] | None = None
    allow_other_workers: bool = False
    retries: int = 0

    # NotImplemented would let Python fall back to tuple equality: answer for tuples here
    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return tuple.__eq__(self, other)
        return False if isinstance(other, tuple) else NotImplemented

    def __ne__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return tuple.__ne__(self, other)
        return True if isinstance(other, tuple) else NotImplemented

    __hash__ = tuple.__hash__


@dataclass(frozen=True)
class Submit:
    """The client submits tasks (they may depend on each other, in any order)."""

    time: float
    tasks: tuple[TaskSpec, ...]


@dataclass(frozen=True)
class Scatter:
    """The client put the data of ``key`` on ``ranks``."""

    time: float
    key: str
    ranks: tuple[int, ...]
    nbytes: int


@dataclass(frozen=True)
class Finished:
    """Worker ``rank`` computed ``key``; it now also holds the deps it ``fetched`` from peers."""

    time: float
    key: str
    rank: int
    nbytes: int
    duration: float
    fetched: tuple[str, ...] = ()


@dataclass(frozen=True)
class Failed:
    """The task raised on ``rank``; ``error`` is opaque to the state."""

    time: float
    key: str
    rank: int
    error: object
    duration: float = 0.0


@dataclass(frozen=True)
class Release:
    """No client Future refers to these keys any more."""

    time: float
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Cancel:
    """The client cancels these keys (and, with them, their unfinished dependents)."""

    time: float
    keys: tuple[str, ...]


@dataclass(frozen=True)
class StealReply:
    """Worker ``rank`` answers a ("steal", rank, key): ok=True means it handed the task back."""

    time: float
    key: str
    rank: int
    ok: bool


@dataclass(frozen=True)
class RankLost:
    """Worker ``rank`` is gone, with its data and its queue."""

    time: float
    rank: int
