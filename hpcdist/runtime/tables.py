"""Per-key tables that give their memory back once most of their keys are gone.

CPython's dicts and sets never shrink when keys are deleted: a table that once held 200 000
keys keeps room for them after the last one left (about 10 MB for a dict of that size), and
iterating it still walks every empty slot. :class:`Shrinker` remembers each table's peak
size and rebuilds a table in place (same object) once it holds at most a
:data:`SHRINK_FACTOR`-th of that peak. A rebuild copies the remaining keys only, so its cost
is paid for by the deletions that led to it.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Union

#: tables that never held more keys than this are left alone
SHRINK_MIN = 4096
#: a table is rebuilt once it holds at most 1/SHRINK_FACTOR of its peak
SHRINK_FACTOR = 8

Table = Union[dict, set]


class Shrinker:
    """Peak sizes of named tables, and the rebuild of those far below their peak."""

    __slots__ = ("peaks", "rebuilds")

    def __init__(self) -> None:
        self.peaks: dict[Hashable, int] = {}
        #: how many rebuilds were made (diagnostics and tests)
        self.rebuilds = 0

    def seen(self, name: Hashable, table: Table) -> None:
        """Record ``table``'s size now (call it where the table is largest, e.g. after an insert burst)."""
        n = len(table)
        if n > self.peaks.get(name, 0):
            self.peaks[name] = n

    def check(self, name: Hashable, table: Table) -> bool:
        """Record ``table``'s size and rebuild it if it fell far below its peak.

        Returns:
            True if ``table`` was rebuilt (its contents are unchanged).
        """
        n = len(table)
        peak = self.peaks.get(name, 0)
        if n >= peak:
            if n > peak:
                self.peaks[name] = n
            return False
        if peak < SHRINK_MIN or n > peak // SHRINK_FACTOR:
            return False
        compact(table)
        self.peaks[name] = n
        self.rebuilds += 1
        return True

    def rebuilt(self, name: Hashable, table: dict) -> dict:
        """Like :meth:`check`, but return a new dict instead of rebuilding ``table`` in place.

        For a table that other threads read without a lock: they see the old dict or the new
        one, each complete, never one half rebuilt.
        """
        n = len(table)
        peak = self.peaks.get(name, 0)
        if n > peak:
            self.peaks[name] = n
        if n >= peak or peak < SHRINK_MIN or n > peak // SHRINK_FACTOR:
            return table
        self.peaks[name] = n
        self.rebuilds += 1
        return dict(table)

    def forget(self, name: Hashable) -> None:
        """Drop the peak of a table that no longer exists (e.g. a lost worker's)."""
        self.peaks.pop(name, None)


def compact(table: Table) -> None:
    """Rebuild ``table`` in place so that its memory fits the keys it holds now (order kept)."""
    items = list(table.items()) if isinstance(table, dict) else list(table)
    table.clear()  # frees the old hash table
    table.update(items)


__all__ = ["SHRINK_FACTOR", "SHRINK_MIN", "Shrinker", "compact"]
