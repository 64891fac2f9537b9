"""The scheduler's per-worker bookkeeping: one slotted record per live rank, and where data lives.

:class:`WorkerTable` is the only writer of these tables; :class:`~hpcdist.runtime.scheduling.dispatch.Dispatch`
owns one and calls its methods. It knows nothing of task states: callers pass the expected
duration of a task with every change that moves load.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from hpcdist.runtime.scheduling.tables import shrink

__all__ = ["WorkerRecord", "WorkerTable"]


class WorkerRecord:
    """One live worker's load and holdings (read them; :class:`WorkerTable` writes them).

    Attributes:
        rank: The worker's rank.
        host: Its host name.
        processing: Keys assigned to it, in assignment (execution) order (a dict used as an ordered set).
        occupancy: Expected seconds of the tasks in ``processing``.
        has_what: Keys it holds.
        incoming: Keys being stolen for it (steals in flight).
        incoming_load: Expected seconds of ``incoming``.
        cancelled: Key -> expected seconds of cancelled tasks it may still be running (busy until it reports).
    """

    __slots__ = ("rank", "host", "processing", "occupancy", "has_what", "incoming", "incoming_load", "cancelled")

    def __init__(self, rank: int, host: str) -> None:
        self.rank = rank
        self.host = host
        self.processing: dict[str, None] = {}
        self.occupancy = 0.0
        self.has_what: set[str] = set()
        self.incoming: set[str] = set()
        self.incoming_load = 0.0
        self.cancelled: dict[str, float] = {}

    def load(self) -> float:
        """Expected seconds of work on this worker: its queue, steals in flight and cancelled tasks."""
        load = self.occupancy + self.incoming_load
        return load + sum(self.cancelled.values()) if self.cancelled else load

    def is_free(self) -> bool:
        """Whether it has nothing queued, nothing coming and no cancelled task still running."""
        return not self.processing and not self.incoming and not self.cancelled

    def __repr__(self) -> str:
        return f"WorkerRecord({self.rank}, {self.host!r}, queued={len(self.processing)}, holds={len(self.has_what)})"


class WorkerTable:
    """Every live worker's record, who holds which key, and the steals in flight.

    Args:
        workers: Rank -> host name of every worker.

    Attributes:
        hosts: Rank -> host name of the live workers (a read-only live view).
        ranks: Live ranks, ascending (placement's tie order; do not modify).
        cancelling: How many workers may still be running a cancelled task (read it).
        holders: Key -> ranks holding it (a read-only live view; do not modify the sets).
    """

    def __init__(self, workers: Mapping[int, str]) -> None:
        self._records: dict[int, WorkerRecord] = {r: WorkerRecord(r, h) for r, h in sorted(workers.items())}
        self._host: dict[int, str] = dict(workers)
        self._who_has: dict[str, set[int]] = {}
        self._steals: dict[str, tuple[int, int | None, float]] = {}  # key -> (victim, thief, expected)
        self.cancelling = 0
        self.ranks: list[int] = sorted(workers)
        self.hosts: Mapping[int, str] = MappingProxyType(self._host)
        self.holders: Mapping[str, set[int]] = MappingProxyType(self._who_has)

    # ---------------------------------------------------------------- queries

    def __contains__(self, rank: object) -> bool:
        return rank in self._host

    def __len__(self) -> int:
        return len(self._host)

    def __getitem__(self, rank: int) -> WorkerRecord:
        return self._records[rank]

    def records(self) -> Iterable[WorkerRecord]:
        """The live workers' records, in rank order."""
        return self._records.values()

    def occupancy(self, rank: int) -> float:
        """Expected seconds of work on ``rank`` (0 for an unknown rank)."""
        rec = self._records.get(rank)
        return rec.load() if rec is not None else 0.0

    def least_occupied(self) -> int:
        """The least occupied live rank, the lowest of a tie (there must be one)."""
        best, least = None, 0.0
        cancelling = self.cancelling
        for rec in self._records.values():  # ascending: strict < keeps the lowest rank of a tie
            occ = rec.occupancy + rec.incoming_load
            if cancelling and rec.cancelled:
                occ += sum(rec.cancelled.values())
            if best is None or occ < least:
                best, least = rec.rank, occ
        return best

    def steal_of(self, key: str) -> tuple[int, int | None] | None:
        """``(victim, thief)`` of the steal of ``key`` in flight (thief None if it was lost), or None."""
        entry = self._steals.get(key)
        return entry[:2] if entry is not None else None

    def is_stealing(self, key: str) -> bool:
        """Whether a steal of ``key`` is in flight."""
        return key in self._steals

    def steal_load(self, key: str) -> float:
        """Expected seconds the steal of ``key`` in flight adds to its thief's load."""
        return self._steals[key][2]

    def steals(self) -> dict[str, tuple[int, int | None]]:
        """Key -> ``(victim, thief)`` of every steal in flight."""
        return {k: (v, t) for k, (v, t, _) in self._steals.items()}

    # ---------------------------------------------------------------- data

    def add_replica(self, rank: int, key: str) -> None:
        """``rank`` holds ``key``."""
        holders = self._who_has.get(key)
        if holders is None:
            self._who_has[key] = {rank}
        else:
            holders.add(rank)
        self._records[rank].has_what.add(key)

    def drop_replicas(self, key: str) -> Iterable[int]:
        """Nobody holds ``key`` any more; return the ranks that did."""
        holders = self._who_has.pop(key, ())
        records = self._records
        for rank in holders:
            records[rank].has_what.discard(key)
        return holders

    # ---------------------------------------------------------------- queues

    def assign(self, rank: int, key: str, expected: float) -> None:
        """Queue ``key``, expected to take ``expected`` seconds, on ``rank``."""
        rec = self._records[rank]
        rec.processing[key] = None
        rec.occupancy += expected

    def unassign(self, rank: int, key: str, expected: float) -> bool:
        """Take ``key`` off ``rank``'s queue (ending its steal, if any); True if the queue is now empty."""
        if self._steals and key in self._steals:
            self.end_steal(key)
        rec = self._records[rank]
        queue = rec.processing
        del queue[key]
        if queue:
            rec.occupancy -= expected
            return False
        rec.occupancy = 0.0  # no float drift once the queue is empty
        return True

    def cancel_running(self, rank: int, key: str, expected: float) -> None:
        """``rank`` may still be running cancelled ``key``: it stays busy until it reports the end."""
        rec = self._records[rank]
        if not rec.cancelled:
            self.cancelling += 1
        rec.cancelled[key] = expected

    def cancelled_ended(self, rank: int, key: str) -> bool:
        """``rank`` no longer runs cancelled ``key``; True if it was running it."""
        rec = self._records.get(rank)
        if rec is None or rec.cancelled.pop(key, None) is None:
            return False
        if not rec.cancelled:
            self.cancelling -= 1
        return True

    # ---------------------------------------------------------------- stealing

    def start_steal(self, key: str, victim: int, thief: int, expected: float) -> None:
        """``thief`` is to run ``key``, queued on ``victim``, once the victim hands it back."""
        self._steals[key] = (victim, thief, expected)
        rec = self._records[thief]
        rec.incoming.add(key)
        rec.incoming_load += expected

    def end_steal(self, key: str) -> None:
        """The steal of ``key`` is over (answered, or its task left the victim)."""
        _, thief, expected = self._steals.pop(key)
        if thief is not None:
            rec = self._records[thief]
            incoming = rec.incoming
            incoming.discard(key)
            if incoming:
                rec.incoming_load -= expected
            else:
                rec.incoming_load = 0.0  # no float drift once nothing is in flight

    # ---------------------------------------------------------------- losing a worker

    def remove(self, rank: int) -> tuple[list[str], list[str]]:
        """Forget lost worker ``rank``.

        Its steals end (as victim) or lose their thief; its replicas are dropped.

        Returns:
            The keys it had queued (in order) and, sorted, the keys it held that nobody else holds.
        """
        for key, (victim, thief, expected) in list(self._steals.items()):
            if victim == rank:
                self.end_steal(key)
            elif thief == rank:
                self._steals[key] = (victim, None, expected)
        rec = self._records.pop(rank)
        if rec.cancelled:
            self.cancelling -= 1
        del self._host[rank]
        self.ranks.remove(rank)
        lost = []
        for key in sorted(rec.has_what):
            holders = self._who_has[key]
            holders.discard(rank)
            if not holders:
                del self._who_has[key]
                lost.append(key)
        return list(rec.processing), lost

    # ---------------------------------------------------------------- memory and checks

    def shrink(self) -> None:
        """Rebuild the per-key tables that fell far below their peak size."""
        shrink(self._who_has)
        shrink(self._steals)
        for rec in self._records.values():
            shrink(rec.processing)
            shrink(rec.has_what)
            shrink(rec.incoming)

    def who_has(self, keys: Iterable[str] | None = None) -> dict[str, list[int]]:
        """Key -> sorted ranks holding it, for ``keys`` or for every key held."""
        holders = self._who_has
        return {k: sorted(holders.get(k, ())) for k in (holders if keys is None else keys)}

    def has_what(self) -> dict[int, list[str]]:
        """Rank -> sorted keys it holds, for every live worker."""
        return {rec.rank: sorted(rec.has_what) for rec in self._records.values()}

    def queued(self, rank: int) -> list[str]:
        """The keys queued on ``rank`` in assignment (execution) order (none for an unknown rank)."""
        rec = self._records.get(rank)
        return list(rec.processing) if rec is not None else []

    def table_sizes(self) -> dict[str, int]:
        """Entries of every per-key table (per-rank tables summed over the ranks)."""
        recs = self._records.values()
        return {
            "who_has": len(self._who_has),
            "has_what": sum(len(r.has_what) for r in recs),
            "processing": sum(len(r.processing) for r in recs),
            "incoming": sum(len(r.incoming) for r in recs),
            "steals": len(self._steals),
        }

    def check(self) -> None:
        """Check the table's own invariants (holdings agree both ways, steals agree with incoming).

        Raises:
            AssertionError: Naming the broken invariant.
        """
        ranks = set(self._host)
        assert set(self._records) == ranks, f"records cover ranks {sorted(self._records)}, workers are {sorted(ranks)}"
        assert self.ranks == sorted(ranks), f"ranks {self.ranks} != sorted workers {sorted(ranks)}"
        cancelling = sum(1 for r in self._records.values() if r.cancelled)
        assert self.cancelling == cancelling, f"{self.cancelling} ranks counted cancelling, {cancelling} are"
        for key, holders in self._who_has.items():
            assert holders, f"key {key!r} has an empty who_has entry"
            for rank in holders:
                assert (
                    rank in ranks and key in self._records[rank].has_what
                ), f"who_has[{key!r}] has {rank}, has_what does not agree"
        for rank, rec in self._records.items():
            for key in rec.has_what:
                assert rank in self._who_has.get(key, ()), f"has_what[{rank}] has {key!r}, who_has does not agree"
            for key in rec.incoming:
                entry = self._steals.get(key)
                assert entry is not None and entry[1] == rank, f"rank {rank} expects {key!r}, no steal for it"
            total = sum(self._steals[k][2] for k in rec.incoming)
            drift = abs(rec.incoming_load - total)
            assert drift <= 1e-6 * max(1.0, total), f"rank {rank}: incoming load {rec.incoming_load} != {total}"
        for key, (victim, thief, _) in self._steals.items():
            assert key in self._records[victim].processing, f"steal of {key!r} from rank {victim}, but it is not queued there"
            assert thief is None or key in self._records[thief].incoming, f"steal of {key!r} for rank {thief} not in incoming"
