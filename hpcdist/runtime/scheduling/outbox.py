"""The instructions of one :meth:`SchedulerState.handle_many` call, with its frees merged per rank.

A key freed on a rank is not sent at once: the frees of one event are collected per rank (a key
freed and needed again within the event is simply not freed), held until the batch ends and
then sent as one :class:`~hpcdist.runtime.scheduling.vocabulary.Free` per rank. When a later
event of the batch needs a held key on that rank again, that rank's held frees go out first, so
they reach the worker before the instruction that needs the key.
"""

from __future__ import annotations

from hpcdist.runtime.scheduling.vocabulary import Compute, Free, Instruction, Steal

_ADDRESSED = (Compute, Free, Steal)  # the instructions sent to a worker (``rank`` names it)

__all__ = ["Outbox"]


class Outbox:
    """Instructions in order, and the frees not sent yet.

    Attributes:
        out: The instructions so far: the state appends every instruction but frees here.
    """

    __slots__ = ("out", "_frees", "_held")

    def __init__(self) -> None:
        self.out: list[Instruction] = []
        self._frees: dict[int, set[str]] = {}  # of the event being handled
        self._held: dict[int, set[str]] = {}  # of the batch's earlier events

    def free(self, rank: int, key: str) -> None:
        """Free ``key`` on (live) ``rank``."""
        freeing = self._frees.get(rank)
        if freeing is None:
            self._frees[rank] = {key}
        else:
            freeing.add(key)

    def unfree(self, rank: int, key: str) -> None:
        """``key`` is (again) wanted on ``rank``: it must not be freed there after this point."""
        if self._frees:
            freeing = self._frees.get(rank)
            if freeing is not None:
                freeing.discard(key)  # freed and needed again within one event: not freed
        if self._held:
            held = self._held.get(rank)
            if held is not None and key in held:
                # freed by an earlier event of the batch: that free must reach the rank first
                del self._held[rank]
                self.out.append(Free(rank, sorted(held)))

    def drop_rank(self, rank: int) -> None:
        """``rank`` is lost: nothing of the batch is addressed to it any more.

        Its frees are dropped, and so are the instructions of the batch's earlier events sent to
        it; a Compute of such an event no longer names it as a holder of an input (the state
        restarts a task whose input had no other holder, so such a Compute is dropped too).
        """
        self._frees.pop(rank, None)
        self._held.pop(rank, None)
        kept = []
        for ins in self.out:
            if type(ins) in _ADDRESSED and ins.rank == rank:
                continue
            if type(ins) is Compute and any(rank in holders for holders in ins.deps.values()):
                deps = {dep: [r for r in holders if r != rank] for dep, holders in ins.deps.items()}
                if not all(deps.values()):
                    continue
                ins = Compute(ins.rank, ins.key, deps)
            kept.append(ins)
        self.out[:] = kept  # the same list: the state appends to it

    def end_event(self) -> None:
        """The current event is handled: hold its frees until the batch ends."""
        if self._frees:
            held = self._held
            for rank, keys in self._frees.items():
                if rank in held:
                    held[rank] |= keys
                else:
                    held[rank] = keys
            self._frees = {}

    def take(self) -> list[Instruction]:
        """End the batch: return its instructions, the held frees last (one per rank, by rank)."""
        out, self.out = self.out, []
        held = self._held
        if held:
            self._held = {}
            for rank in sorted(held):
                if held[rank]:
                    out.append(Free(rank, sorted(held[rank])))
        return out

    def pending_frees(self) -> int:
        """Keys freed but not sent yet (a diagnostic)."""
        return sum(map(len, self._frees.values())) + sum(map(len, self._held.values()))
