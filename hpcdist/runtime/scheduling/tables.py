"""Per-key tables that give their memory back once most of their keys are gone.

CPython's dicts and sets never shrink when keys are deleted: a table that once held 200 000
keys keeps room for them after the last one left (about 10 MB for a dict of that size), and
iterating it still walks every empty slot. :func:`shrink` rebuilds a table in place (same
object) when its allocation is far larger than its keys need; callers check their tables
after many keys were deleted. A rebuild copies the remaining keys only (at most an eighth
of the peak), so its cost is paid for by the deletions that led to it.
"""

from __future__ import annotations

import sys
from typing import TypeVar, Union

#: tables whose allocation is below this many bytes are left alone
SHRINK_MIN_BYTES = 256 * 1024
#: bytes per key above which a table is rebuilt (a table in use needs ~40-130 bytes per key:
#: this is one that lost about 7/8 of its peak)
SHRINK_BYTES_PER_KEY = 512

Table = Union[dict, set]
T = TypeVar("T", dict, set)


def oversized(table: Table) -> bool:
    """Whether ``table`` holds far fewer keys than its memory has room for."""
    size = sys.getsizeof(table)
    return size >= SHRINK_MIN_BYTES and size > SHRINK_BYTES_PER_KEY * len(table)


def shrink(table: Table) -> bool:
    """Rebuild ``table`` in place if it is :func:`oversized` (contents and order kept).

    Returns:
        True if it was rebuilt.
    """
    if not oversized(table):
        return False
    items = list(table.items()) if isinstance(table, dict) else list(table)
    table.clear()  # frees the old hash table
    table.update(items)
    return True


def shrunk(table: T) -> T:
    """``table`` itself, or a new copy of it if it is :func:`oversized`.

    For a table that other threads read without a lock: they see the old object or the new
    one, each complete, never one half rebuilt.
    """
    return type(table)(table) if oversized(table) else table


__all__ = ["SHRINK_BYTES_PER_KEY", "SHRINK_MIN_BYTES", "oversized", "shrink", "shrunk"]
