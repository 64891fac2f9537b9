"""Placement and work-stealing policy: pure functions over plain mappings.

Nothing here keeps state, reads a clock or does I/O; :mod:`hpcdist.runtime.scheduling.state` calls these
functions with its own tables, and the tests call them with literal tables.

Cost model (one source of truth for placement and stealing):

* Moving ``n`` bytes between hosts takes ``n / CROSS_HOST_BANDWIDTH`` seconds, between two ranks
  of the same host ``n / SAME_HOST_BANDWIDTH`` seconds, and nothing when the rank already holds
  the key. For placement the same ratio is used as a byte discount (``SAME_HOST_FACTOR``).
* A task whose function has never finished is expected to take ``DEFAULT_DURATION`` seconds.
  Half a second (the value dask.distributed uses for unknown tasks) is long enough that a burst
  of unknown tasks spreads across idle workers instead of piling onto the lowest rank, and short
  enough that one measured duration quickly dominates the running average.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from hpcdist.errors import NoValidWorker

#: expected seconds of a task whose function has no measured duration yet
DEFAULT_DURATION = 0.5
#: bytes per second between ranks on different hosts
CROSS_HOST_BANDWIDTH = 1e9
#: bytes per second between two ranks on the same host (shared memory)
SAME_HOST_BANDWIDTH = 5e9
#: weight of a same-host byte relative to a cross-host byte when placing tasks
SAME_HOST_FACTOR = CROSS_HOST_BANDWIDTH / SAME_HOST_BANDWIDTH
#: weight of the newest duration in the per-function running average
EMA_ALPHA = 0.5
#: seconds a steal costs before the thief can start: a round trip to the victim and a new send
#: (idle ranks poll every few ms). Without it, tasks of microseconds were stolen back and forth:
#: thousands of useless steal messages per thousand tiny tasks.
STEAL_LATENCY = 0.002
#: tasks expected to take less than this are never stolen: each stolen task costs rank 0 a STEAL,
#: its reply and a new COMPUTE, more scheduler time than such a task takes where it waits. Without
#: it, every round of 100 000 no-op tasks planned 5 000-16 000 steals (one message each, and a
#: scan of the victim's run queue), and a round took up to 2.5x as long as another.
STEAL_MIN_DURATION = 1e-4

__all__ = [
    "CROSS_HOST_BANDWIDTH",
    "DEFAULT_DURATION",
    "EMA_ALPHA",
    "SAME_HOST_BANDWIDTH",
    "SAME_HOST_FACTOR",
    "STEAL_LATENCY",
    "STEAL_MIN_DURATION",
    "balance_plan",
    "bytes_to_receive",
    "decide_worker",
    "ema",
    "holder_order",
    "pick_holder",
    "restriction_error",
    "transfer_time",
    "valid_workers",
]


def ema(old: float | None, new: float, alpha: float = EMA_ALPHA) -> float:
    """Return the exponential moving average after observing ``new``.

    Args:
        old: The previous average, or None when ``new`` is the first observation.
        new: The observed value.
        alpha: Weight of the new observation, in (0, 1].

    Returns:
        ``new`` if there was no previous average, else ``alpha * new + (1 - alpha) * old``.
    """
    if old is None:
        return float(new)
    return alpha * new + (1.0 - alpha) * old


def valid_workers(
    alive: Collection[int], restrict: frozenset[int] | None, allow_other_workers: bool
) -> frozenset[int]:
    """Return the ranks a task may be placed on.

    Args:
        alive: Ranks of the live workers.
        restrict: Ranks the task asked for, or None for no restriction.
        allow_other_workers: If True the restriction is a preference: the allowed live ranks are
            used when there is one, else every live rank.

    Returns:
        The candidate ranks; empty when the task cannot run anywhere (see
        :func:`restriction_error`) or when no worker is alive.
    """
    everyone = frozenset(alive)
    if restrict is None:
        return everyone
    allowed = everyone & restrict
    if allowed or not allow_other_workers:
        return allowed
    return everyone


def restriction_error(key: str, restrict: Collection[int], alive: Collection[int]) -> NoValidWorker:
    """Build the error a task gets when its restrictions match no live worker.

    Args:
        key: The task key.
        restrict: Ranks the task asked for.
        alive: Ranks of the live workers.

    Returns:
        A :class:`NoValidWorker` whose message names both rank lists.
    """
    return NoValidWorker(
        f"task {key!r} may only run on worker ranks {sorted(restrict)}, but the live worker ranks"
        f" are {sorted(alive)}; fix workers= or pass allow_other_workers=True"
    )


def holder_order(holders: Iterable[int], rank: int, host_of: Callable[[int], str | None]) -> list[int]:
    """Return the holders of an input of a task placed on ``rank``, best source first.

    ``rank`` itself first, then holders on ``rank``'s host, then the others; ascending within each.

    Args:
        holders: Ranks holding the input.
        rank: The rank that runs the task.
        host_of: Rank -> host name (None for an unknown rank).
    """
    host = host_of(rank)
    return sorted(holders, key=lambda h: (h != rank, host_of(h) != host, h))


def pick_holder(holders: Sequence[int], rank: int, host_of: Callable[[int], str | None]) -> int:
    """Return the holder that sends an input to ``rank``: one on ``rank``'s host if any, spread by rank.

    The one rule for who sends: a worker asks this holder for an input it lacks, and the
    scheduler has this holder push the input instead when it can.

    Args:
        holders: Ranks holding the input (not empty), in :func:`holder_order`.
        rank: The rank that needs the input.
        host_of: Rank -> host name.
    """
    host = host_of(rank)
    pool = [h for h in holders if host_of(h) == host] or holders
    return pool[rank % len(pool)]


def bytes_to_receive(
    rank: int,
    deps: Iterable[str],
    who_has: Mapping[str, Collection[int]],
    nbytes: Mapping[str, int],
    host_of: Mapping[int, str],
    same_host_factor: float = SAME_HOST_FACTOR,
) -> float:
    """Return the weighted number of bytes ``rank`` must fetch to run a task with ``deps``.

    A dep held by ``rank`` costs 0, one held by another rank of the same host costs
    ``nbytes * same_host_factor``, any other costs ``nbytes``. Deps nobody holds are skipped.
    """
    host = host_of.get(rank)
    total = 0.0
    for dep in deps:
        holders = who_has.get(dep, ())
        if not holders or rank in holders:
            continue
        size = nbytes.get(dep, 0)
        if any(host_of.get(h) == host for h in holders):
            total += size * same_host_factor
        else:
            total += size
    return total


def transfer_time(
    rank: int,
    deps: Iterable[str],
    who_has: Mapping[str, Collection[int]],
    nbytes: Mapping[str, int],
    host_of: Mapping[int, str],
) -> float:
    """Return the expected seconds ``rank`` needs to fetch ``deps`` it does not hold."""
    return bytes_to_receive(rank, deps, who_has, nbytes, host_of) / CROSS_HOST_BANDWIDTH


def decide_worker(
    deps: Iterable[str],
    candidates: Collection[int],
    who_has: Mapping[str, Collection[int]],
    nbytes: Mapping[str, int],
    occupancy: Mapping[int, float],
    host_of: Mapping[int, str],
) -> int:
    """Choose the rank to run a task on.

    The winner receives the fewest weighted bytes (see :func:`bytes_to_receive`); ties go to the
    least occupied rank (expected seconds of queued work), then to the lowest rank. Deps held by
    more than half of the candidates (broadcast data) are left out of the byte count.

    Args:
        deps: Keys of the task's dependencies.
        candidates: Ranks allowed to run the task (see :func:`valid_workers`); must not be empty.
        who_has: Key -> ranks holding it.
        nbytes: Key -> size in bytes.
        occupancy: Rank -> expected seconds of queued work (missing means 0).
        host_of: Rank -> host name.

    Returns:
        The chosen rank.

    Raises:
        ValueError: If ``candidates`` is empty (the caller must check restrictions first).
    """
    cands = sorted(candidates)
    if not cands:
        raise ValueError("decide_worker needs at least one candidate rank")
    half = len(cands) / 2
    cand_set = set(cands)
    # (holders, size, hosts of the holders) of each counted dep, in order: bytes_to_receive's sum
    # without looking the same things up again for every candidate
    counted = []
    for dep in dict.fromkeys(deps):
        holders = who_has.get(dep, ())
        if holders and len(cand_set.intersection(holders)) <= half:
            counted.append((holders, nbytes.get(dep, 0), {host_of.get(h) for h in holders}))
    if not counted:
        return min(cands, key=lambda rank: (occupancy.get(rank, 0.0), rank))

    def cost(rank: int) -> tuple[float, float, int]:
        host = host_of.get(rank)
        moved = 0.0
        for holders, size, hosts in counted:
            if rank not in holders:
                moved += size * SAME_HOST_FACTOR if host in hosts else size
        return (moved, occupancy.get(rank, 0.0), rank)

    return min(cands, key=cost)


def balance_plan(
    idle_ranks: Iterable[int],
    processing: Mapping[int, Sequence[str]],
    expected: Callable[[str], float],
    deps_of: Callable[[str], Iterable[str]],
    allowed_of: Callable[[str], frozenset[int] | None],
    who_has: Mapping[str, Collection[int]],
    nbytes: Mapping[str, int],
    host_of: Mapping[int, str],
    loads: Mapping[int, float] | None = None,
) -> list[tuple[int, int, str]]:
    """Plan which queued tasks idle workers should steal.

    Greedy: the least loaded thief takes, from the most loaded victim, the task nearest the back
    of the victim's queue that would finish sooner on the thief (its current load + transfer
    time + duration) than where it waits (sum of expected durations ahead of it + duration).
    The first task of a queue is assumed running and never taken, nor is a task expected to take
    less than :data:`STEAL_MIN_DURATION`. Repeats until no thief can improve any task, i.e. the
    loads are balanced.

    Args:
        idle_ranks: Ranks that may receive work (thieves); they are never victims.
        processing: Rank -> queued keys in execution order (index 0 is running).
        expected: Key -> expected duration in seconds.
        deps_of: Key -> dependency keys.
        allowed_of: Key -> ranks allowed to run it, or None for any rank.
        who_has: Key -> ranks holding it.
        nbytes: Key -> size in bytes.
        host_of: Rank -> host name.
        loads: Rank -> work the thief already has (e.g. steals in flight); missing means 0.

    Returns:
        ``(thief, victim, key)`` triples in the order they were chosen.
    """
    thieves = sorted(set(idle_ranks))
    loads = loads or {}
    tload = {t: loads.get(t, 0.0) for t in thieves}
    queues = {v: list(q) for v, q in processing.items() if v not in tload and len(q) >= 2}
    vload = {v: sum(expected(k) for k in q) for v, q in queues.items()}
    plan: list[tuple[int, int, str]] = []
    while queues and thieves:
        move = _best_move(
            thieves, tload, queues, vload, expected, deps_of, allowed_of, who_has, nbytes, host_of
        )
        if move is None:
            break
        thief, victim, index, cost = move
        key = queues[victim].pop(index)
        vload[victim] -= expected(key)
        tload[thief] += cost
        plan.append((thief, victim, key))
        if len(queues[victim]) < 2:
            del queues[victim]
    return plan


def _best_move(thieves, tload, queues, vload, expected, deps_of, allowed_of, who_has, nbytes, host_of):
    # Least loaded thief first; for it, most loaded victim first; first improving task from the back.
    for thief in sorted(thieves, key=lambda t: (tload[t], t)):
        for victim in sorted(queues, key=lambda v: (-vload[v], v)):
            if vload[victim] <= tload[thief]:
                break
            queue = queues[victim]
            ahead = vload[victim]
            for index in range(len(queue) - 1, 0, -1):
                key = queue[index]
                duration = expected(key)
                ahead -= duration
                if duration < STEAL_MIN_DURATION:
                    continue
                allowed = allowed_of(key)
                if allowed is not None and thief not in allowed:
                    continue
                cost = transfer_time(thief, deps_of(key), who_has, nbytes, host_of) + duration
                # the steal's latency is paid once for the whole batch, not per task
                if tload[thief] + STEAL_LATENCY + cost < ahead + duration:
                    return thief, victim, index, cost
    return None
