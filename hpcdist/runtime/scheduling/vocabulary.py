"""The scheduler's vocabulary: task states, the transition table, task specs, events and instructions.

Plain data, no behaviour: :mod:`hpcdist.runtime.scheduling.state` consumes the events and returns
the instructions (:data:`INSTRUCTIONS`, one named tuple class per kind, read by field name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Union


RELEASED, WAITING, READY, PROCESSING = "released", "waiting", "ready", "processing"
MEMORY, ERRED, CANCELLED, FORGOTTEN = "memory", "erred", "cancelled", "forgotten"

#: The one table of legal transitions; anything else raises :class:`~hpcdist.errors.InvalidTransition`.
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


#: What caused an event: a short string, or a tuple of its parts (e.g. ``("done", rank, seq)``:
#: no string is formatted per event; :func:`stimulus_name` formats one when a log is read).
Stimulus = Union[str, tuple]


def stimulus_name(stimulus: Stimulus) -> str:
    """Return the printable name of an event's ``stimulus_id`` (tuple parts joined by ``-``)."""
    return "-".join(map(str, stimulus)) if isinstance(stimulus, tuple) else stimulus


# Every event has ``time`` (seconds, the caller's clock) first and the keyword-only
# ``stimulus_id`` last: the message that caused it, recorded with each transition it makes.


@dataclass(frozen=True)
class Submit:
    """The client submits tasks (they may depend on each other, in any order)."""

    time: float
    tasks: tuple[TaskSpec, ...]
    stimulus_id: Stimulus = field(default="", kw_only=True)


@dataclass(frozen=True)
class Scatter:
    """The client put the data of ``key`` on ``ranks``."""

    time: float
    key: str
    ranks: tuple[int, ...]
    nbytes: int
    stimulus_id: Stimulus = field(default="", kw_only=True)


@dataclass(frozen=True)
class Finished:
    """Worker ``rank`` computed ``key``; it now also holds the deps it ``fetched`` from peers."""

    time: float
    key: str
    rank: int
    nbytes: int
    duration: float
    fetched: tuple[str, ...] = ()
    stimulus_id: Stimulus = field(default="", kw_only=True)


@dataclass(frozen=True)
class Failed:
    """The task raised on ``rank``; ``error`` is opaque to the state.

    ``infrastructure``: it failed only because an input could not come from a dead peer; the
    state handles it like a lost task (placed again, ``retries_left`` kept). ``fetched``: the
    copies ``rank`` made since its last report (as in :class:`Finished`: other tasks queued
    there may need them).
    """

    time: float
    key: str
    rank: int
    error: object
    duration: float = 0.0
    fetched: tuple[str, ...] = ()
    infrastructure: bool = field(default=False, kw_only=True)
    stimulus_id: Stimulus = field(default="", kw_only=True)


@dataclass(frozen=True)
class Release:
    """No client Future refers to these keys any more."""

    time: float
    keys: tuple[str, ...]
    stimulus_id: Stimulus = field(default="", kw_only=True)


@dataclass(frozen=True)
class Cancel:
    """The client cancels these keys (and, with them, their unfinished dependents)."""

    time: float
    keys: tuple[str, ...]
    stimulus_id: Stimulus = field(default="", kw_only=True)


@dataclass(frozen=True)
class StealReply:
    """Worker ``rank`` answers a :class:`Steal` of ``key``: ok=True means it handed the task back."""

    time: float
    key: str
    rank: int
    ok: bool
    stimulus_id: Stimulus = field(default="", kw_only=True)


@dataclass(frozen=True)
class RankLost:
    """Worker ``rank`` is gone, with its data and its queue.

    ``running`` names the tasks it was running when that is known (e.g. from its last words or
    its state file; ``()``: it was idle); None lets the state infer it (see
    :mod:`hpcdist.runtime.scheduling.recovery`). Those tasks are suspect: each death is counted.
    """

    time: float
    rank: int
    running: tuple[str, ...] | None = None
    stimulus_id: Stimulus = field(default="", kw_only=True)


# ---------------------------------------------------------------------------- instructions
#
# Named tuples: the state builds one or two per task, and a named tuple costs little more than a
# plain tuple (the state's hot path builds them with ``tuple.__new__(cls, fields)``). Equality
# names the class, as TaskSpec's does: a Memory never equals a Cancelled with the same key.


def _same_class_eq(self: tuple, other: object) -> bool:
    if other.__class__ is self.__class__:
        return tuple.__eq__(self, other)
    return False if isinstance(other, tuple) else NotImplemented


def _same_class_ne(self: tuple, other: object) -> bool:
    if other.__class__ is self.__class__:
        return tuple.__ne__(self, other)
    return True if isinstance(other, tuple) else NotImplemented


class Compute(NamedTuple):
    """Run ``key`` on worker ``rank``.

    Attributes:
        rank: The worker.
        key: The task.
        deps: Input key -> ranks holding it, best source first (see
            :func:`~hpcdist.runtime.scheduling.policy.holder_order`).
    """

    rank: int
    key: str
    deps: dict[str, list[int]]

    __eq__, __ne__, __hash__ = _same_class_eq, _same_class_ne, tuple.__hash__


class Free(NamedTuple):
    """Worker ``rank`` drops its copies of ``keys`` (sorted)."""

    rank: int
    keys: list[str]

    __eq__, __ne__, __hash__ = _same_class_eq, _same_class_ne, tuple.__hash__


class Steal(NamedTuple):
    """Worker ``rank`` hands queued ``key`` back if it has not started it (answered by a StealReply).

    Also sent when a queued task is no longer wanted (cancelled, released, or one of its inputs
    was lost), so the worker drops it if it has not started; the reply is then ignored.
    """

    rank: int
    key: str

    __eq__, __ne__, __hash__ = _same_class_eq, _same_class_ne, tuple.__hash__


class Memory(NamedTuple):
    """A wanted key is in memory (for the client).

    Attributes:
        key: The key.
        data: The pickled result when rank 0 already has it (a small result sent with its DONE);
            the state always leaves it None, the scheduler fills it in.
    """

    key: str
    data: Any = None

    __eq__, __ne__, __hash__ = _same_class_eq, _same_class_ne, tuple.__hash__


class Erred(NamedTuple):
    """A wanted key erred with ``error`` (opaque to the state: the worker's report, or an exception)."""

    key: str
    error: object

    __eq__, __ne__, __hash__ = _same_class_eq, _same_class_ne, tuple.__hash__


class Cancelled(NamedTuple):
    """A wanted key was cancelled."""

    key: str

    __eq__, __ne__, __hash__ = _same_class_eq, _same_class_ne, tuple.__hash__


#: Keys a :class:`Recovered` names per list (its counts are exact): a loss of thousands of keys
#: stays a small record.
RECOVERED_KEYS_MAX = 1000


class Recovered(NamedTuple):
    """What the loss of worker ``rank`` cost: one per :class:`RankLost` of a live rank.

    Sent to no worker: the scheduler logs it and hands it to the client. Key lists are sorted
    and hold the first :data:`RECOVERED_KEYS_MAX` keys; the ``n_`` counts are exact.

    Attributes:
        rank: The lost worker.
        running: The tasks it was running, blamed for its death (see
            :mod:`~hpcdist.runtime.scheduling.recovery`); empty if it was idle.
        deaths: For each of ``running``, the workers that have died running it so far (at
            ``allowed_failures`` it erred with :class:`~hpcdist.errors.KilledWorker`).
        requeued: Tasks that were pending and go back to be placed: queued or running there,
            or running elsewhere and needing an input only it held.
        recomputed: Keys computed before that are computed again: results whose only copy it
            held, and the released ancestors they need (their lineage).
        erred: Keys that erred with the loss (:class:`~hpcdist.errors.WorkerLost`, ``KilledWorker``,
            or no live worker may run them), and their pending dependents.
        n_requeued: How many tasks went back.
        n_recomputed: How many keys are recomputed.
        n_erred: How many keys erred.
    """

    rank: int
    running: tuple[str, ...] = ()
    deaths: tuple[int, ...] = ()
    requeued: tuple[str, ...] = ()
    recomputed: tuple[str, ...] = ()
    erred: tuple[str, ...] = ()
    n_requeued: int = 0
    n_recomputed: int = 0
    n_erred: int = 0

    __eq__, __ne__, __hash__ = _same_class_eq, _same_class_ne, tuple.__hash__


#: Every instruction class ``SchedulerState.handle()`` returns; Memory, Erred and Cancelled
#: are also the notes the scheduler forwards to the client, Recovered what it logs of a loss.
INSTRUCTIONS = (Compute, Free, Steal, Memory, Erred, Cancelled, Recovered)
Instruction = Union[Compute, Free, Steal, Memory, Erred, Cancelled, Recovered]
