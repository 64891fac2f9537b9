"""Which peers have gone silent: the failure detector's table, pure (no MPI, clock or threads).

A transport that watches peers marks every message it receives from a rank with
:meth:`Liveness.heard` and every message it posts to one with :meth:`Liveness.sent` (each a
flag store, so the per-message cost is nil); now and then it asks :meth:`Liveness.due_beats`
which watched ranks it has posted nothing to for :attr:`~Liveness.interval` (it sends them a
heartbeat) and :meth:`Liveness.silent` which have said nothing for :attr:`~Liveness.bound`
(each reported once, then no longer watched). Every method that needs the time takes ``now``.

Deaf time: if this rank itself did not look (no call that takes ``now``) for longer than
:attr:`~Liveness.deaf_after` -- a driver holding the GIL, a stopped process, a long receive --
the gap is not held against the peers: their silence is counted only while this rank listened.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from hpcdist.envvars import env_seconds

#: default bound: a peer silent this long (seconds) is declared lost
FAILURE_TIMEOUT = 2.0
#: heartbeat interval as a fraction of the bound
BEAT_FRACTION = 0.25
#: a gap between two looks longer than this fraction of the bound is deaf time
DEAF_FRACTION = 0.5
#: a worker waits this many bounds before it takes rank 0 for dead: rank 0 runs the user's driver and the
#: scheduler on one core's share, so it is the rank most often slow under load, and a worker that takes it
#: for dead ends itself (a real death of rank 0 ends the job anyway; ULFM reports one at once)
SCHEDULER_SLACK = 5.0


def failure_timeout(environ: Mapping[str, str] | None = None) -> float:
    """The failure detector's bound: ``HPCDIST_FAILURE_TIMEOUT`` seconds or :data:`FAILURE_TIMEOUT`.

    Args:
        environ: where to read the variable (default ``os.environ``).

    Raises:
        HpcdistError: the variable is set but is not a positive, finite number of seconds.
    """
    return env_seconds("HPCDIST_FAILURE_TIMEOUT", FAILURE_TIMEOUT, environ)


def for_rank(rank: int, size: int, bound: float, now: float) -> "Liveness":
    """The table rank ``rank`` of ``size`` keeps: rank 0 watches every worker within ``bound``; a worker
    watches rank 0 only, within ``bound * SCHEDULER_SLACK``, and beats as often as rank 0 needs."""
    if rank == 0:
        return Liveness(size, range(1, size), bound, now)
    return Liveness(size, [0], bound * SCHEDULER_SLACK, now, interval=bound * BEAT_FRACTION,
                    deaf_after=bound * DEAF_FRACTION)


class Liveness:
    """When each watched rank was last heard from and last sent to.

    Args:
        size: number of ranks (flags are indexed by rank).
        watch: the ranks to watch.
        bound: seconds of silence after which a watched rank is declared lost.
        now: the current time (any monotonic clock, in seconds).
        interval: heartbeat interval; default ``bound * BEAT_FRACTION``.
        deaf_after: a gap between looks longer than this is deaf time; default
            ``bound * DEAF_FRACTION``.
    """

    __slots__ = ("bound", "interval", "deaf_after", "heard_flags", "sent_flags", "_last_heard", "_last_sent",
                 "_looked")

    def __init__(self, size: int, watch: Iterable[int], bound: float, now: float, *,
                 interval: float | None = None, deaf_after: float | None = None) -> None:
        if not bound > 0:
            raise ValueError(f"bound must be positive, got {bound!r}")
        self.bound = bound
        self.interval = bound * BEAT_FRACTION if interval is None else interval
        self.deaf_after = bound * DEAF_FRACTION if deaf_after is None else deaf_after
        #: per rank: heard from since the last look (set by :meth:`heard` or directly, a flag store)
        self.heard_flags = [False] * size
        #: per rank: posted to since the last look
        self.sent_flags = [False] * size
        ranks = sorted(set(watch))
        self._last_heard = {r: now for r in ranks}
        self._last_sent = {r: now for r in ranks}
        self._looked = now

    # -- marking (per message: keep these a flag store) ----------------------------------------

    def heard(self, rank: int) -> None:
        """``rank`` said something (O(1); folded in at the next look)."""
        self.heard_flags[rank] = True

    def sent(self, rank: int) -> None:
        """Something was posted to ``rank`` (O(1); folded in at the next look)."""
        self.sent_flags[rank] = True

    # -- looking -----------------------------------------------------------------------------

    @property
    def watched(self) -> list[int]:
        """The ranks still watched, in order."""
        return sorted(self._last_heard)

    def watching(self, rank: int) -> bool:
        """Whether ``rank`` is still watched."""
        return rank in self._last_heard

    def unwatch(self, rank: int) -> None:
        """Stop watching ``rank`` (it was forgotten); idempotent."""
        self._last_heard.pop(rank, None)
        self._last_sent.pop(rank, None)

    def due_beats(self, now: float) -> list[int]:
        """Watched ranks this rank has posted nothing to for :attr:`interval`; they count as
        sent to now (the caller sends each a heartbeat)."""
        self._fold(now)
        due = [r for r, t in self._last_sent.items() if now - t >= self.interval]
        for r in due:
            self._last_sent[r] = now
        return due

    def silent(self, now: float) -> list[tuple[int, float]]:
        """Watched ranks not heard from for longer than :attr:`bound`, with how long (seconds);
        each is reported once and is no longer watched."""
        self._fold(now)
        gone = [(r, now - t) for r, t in self._last_heard.items() if now - t > self.bound]
        for r, _ in gone:
            self.unwatch(r)
        return gone

    def _fold(self, now: float) -> None:
        gap = now - self._looked
        if gap > 0:
            self._looked = now
            if gap > self.deaf_after:  # this rank was not listening: peers cannot be blamed for it
                last = self._last_heard
                for r in last:
                    last[r] += gap
        heard, sent = self.heard_flags, self.sent_flags
        for r in self._last_heard:
            if heard[r]:
                heard[r] = False
                self._last_heard[r] = now
            if sent[r]:
                sent[r] = False
                self._last_sent[r] = now
