"""A rank-0 transport that records what the scheduler sends (for tests that drive a Scheduler by hand)."""

from __future__ import annotations


class Rank0Transport:
    """Rank 0 of a world of 3; ``sent`` holds every ``(dest, header)`` in order."""

    size = 3
    rank = 0

    def __init__(self) -> None:
        self.sent: list[tuple[int, tuple]] = []

    def host_of(self, rank: int) -> str:
        return "h"

    def send(self, dest: int, header: tuple, buffers=()) -> None:
        self.sent.append((dest, header))
