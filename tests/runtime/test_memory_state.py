"""Rank 0's scheduler state is O(live keys), and repeated rounds do the same work (no MPI, no clock).

Every scenario runs N tasks through a :class:`SchedulerState` the way the scheduler would (worker
reports come in batches, as real DONE messages do), then the client drops its futures. Every
per-key table (:meth:`SchedulerState.table_sizes`) must then be back to its empty baseline, and
with K futures kept, O(K). Rounds are compared by what they do (instructions, steals, frees),
never by time.
"""

from __future__ import annotations

import collections
import sys

import pytest

from hpcdist.runtime.scheduling import policy, tables
from hpcdist.runtime.scheduling.transitions import LOG_MAX
from hpcdist.runtime.scheduling.vocabulary import Cancel, Failed, Finished, RankLost, Release, Scatter, StealReply, Submit, TaskSpec
from hpcdist.runtime.scheduling.state import SchedulerState
from hpcdist.runtime.scheduling.vocabulary import Free

HOSTS = {1: "a", 2: "a", 3: "b"}
#: per-key tables that have nothing to do with how many keys are live
BOUNDED = {"durations", "log"}


class Driver:
    """Feeds a state like the scheduler does: batches of events, times from a counter."""

    def __init__(self, workers=HOSTS) -> None:
        self.s = SchedulerState(dict(workers))
        self.t = 0.0
        self.counts: collections.Counter = collections.Counter()

    def __call__(self, *events) -> list[tuple]:
        out = self.s.handle_many(events)
        self.s.pop_forgotten()  # as the scheduler does after every step (it drops their payloads)
        for ins in out:
            self.counts[type(ins).__name__.lower()] += 1
            if type(ins) is Free:
                self.counts["freed keys"] += len(ins.keys)
        return out

    def ev(self, kind, *args):
        self.t += 1.0
        return kind(self.t, *args)

    def submit(self, specs) -> list[tuple]:
        return self(self.ev(Submit, tuple(specs)))

    def run_all(self, batch=256, duration=1e-6, fail=frozenset(), lag=(1, 2, 3)) -> None:
        """Every rank reports its queue in batches, the ranks of ``lag`` one after the other
        (the first empties its queue while the others still hold theirs: stealing is tried)."""
        for rank in lag:
            while self.s.processing_on(rank):
                keys = self.s.processing_on(rank)[:batch]
                events = [
                    self.ev(Failed, k, rank, ("err", "text", rank, "h", 4), duration) if k in fail
                    else self.ev(Finished, k, rank, 8, duration, ())
                    for k in keys
                ]
                self(*events)
                self.answer_steals()

    def answer_steals(self) -> None:
        for key, (victim, _thief) in list(self.s.worker_table.steals().items()):
            self(self.ev(StealReply, key, victim, True))

    def release(self, keys) -> None:
        self(self.ev(Release, tuple(keys)))

    def sizes(self) -> dict[str, int]:
        self.s.validate()
        return self.s.table_sizes()


def live(sizes: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in sizes.items() if k not in BOUNDED and v}


def specs(n, prefix="t", fn="noop"):
    return [TaskSpec(f"{prefix}{i}", (), fn) for i in range(n)]


# --------------------------------------------------------------------- scenarios: all released

def _independent(d, n):
    d.submit(specs(n))
    d.run_all()
    d.release(f"t{i}" for i in range(n))


def _released_while_queued(d, n):
    d.submit(specs(n))
    d.release(f"t{i}" for i in range(n))  # dropped before any result came
    d.run_all()  # late reports of forgotten keys: freed, not kept


def _half_done_then_released(d, n):
    d.submit(specs(n))
    keys = d.s.processing_on(1)[: n // 6]
    d(*[d.ev(Finished, k, 1, 8, 1e-6, ()) for k in keys])
    d.release(f"t{i}" for i in range(n))
    d.run_all()


def _chains(d, n):
    roots = specs(n // 2, "a")
    tails = [TaskSpec(f"b{i}", (f"a{i}",), "inc") for i in range(n // 2)]
    d.submit(roots + tails)
    while any(d.s.processing_on(r) for r in HOSTS):
        d.run_all()
    d.release(f"b{i}" for i in range(n // 2))
    d.release(f"a{i}" for i in range(n // 2))


def _erred(d, n):
    d.submit(specs(n))
    d.run_all(fail={f"t{i}" for i in range(0, n, 3)})
    d.release(f"t{i}" for i in range(n))


def _cancelled(d, n):
    d.submit(specs(n))
    d(d.ev(Cancel, tuple(f"t{i}" for i in range(n // 2))))
    d.run_all()
    d.release(f"t{i}" for i in range(n))


def _scattered(d, n):
    d(*[d.ev(Scatter, f"s{i}", (1 + i % 3,), 100) for i in range(n)])
    d.release(f"s{i}" for i in range(n))


def _worker_lost(d, n):
    d.submit(specs(n))
    d(d.ev(RankLost, 3))
    d.run_all(lag=(1, 2))
    d.release(f"t{i}" for i in range(n))


def _resubmitted(d, n):
    for _ in range(3):  # the same pure keys, round after round
        _independent(d, n)


SCENARIOS = {
    "independent": _independent,
    "released while queued": _released_while_queued,
    "half done, then released": _half_done_then_released,
    "chains a->b": _chains,
    "a third erred": _erred,
    "half cancelled": _cancelled,
    "scattered": _scattered,
    "a worker lost": _worker_lost,
    "resubmitted 3 rounds": _resubmitted,
}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=list(SCENARIOS))
def test_every_table_is_back_to_empty_once_every_future_is_dropped(scenario):
    d = Driver()
    SCENARIOS[scenario](d, 3000)
    assert live(d.sizes()) == {}
    assert d.sizes()["log"] <= LOG_MAX


@pytest.mark.parametrize("k", [0, 1, 10, 500])
@pytest.mark.parametrize("n", [600, 6000])
def test_with_k_live_futures_every_table_is_o_k(n, k):
    d = Driver()
    d.submit(specs(n))
    d.run_all()
    d.release(f"t{i}" for i in range(k, n))  # keys t0..t{k-1} keep their futures
    sizes = live(d.sizes())
    assert sizes.get("tasks", 0) == k
    assert sizes.get("who_has", 0) == k and sizes.get("has_what", 0) == k
    assert all(v <= k for v in sizes.values()), sizes


def test_tables_give_their_memory_back_after_a_big_round():
    d = Driver()
    empty = sys.getsizeof(d.s._tasks), sys.getsizeof(d.s.worker_table._who_has)
    _independent(d, 40_000)
    assert live(d.sizes()) == {}
    # CPython never shrinks a dict on delete: 40 000 keys leave ~2.6 MB behind unless rebuilt
    after = sys.getsizeof(d.s._tasks), sys.getsizeof(d.s.worker_table._who_has)
    assert after[0] < 64 * 1024 and after[1] < 64 * 1024, (empty, after)
    for rank in HOSTS:
        assert sys.getsizeof(d.s.worker_table[rank].processing) < 64 * 1024
        assert sys.getsizeof(d.s.worker_table[rank].has_what) < 64 * 1024


def _round(d: Driver, n: int) -> dict[str, int]:
    d.counts.clear()
    _independent(d, n)
    assert live(d.sizes()) == {}
    return dict(d.counts)


@pytest.mark.parametrize("lag", [(1, 2, 3), (3, 1, 2), (2, 3, 1)])
def test_repeated_rounds_do_the_same_work_and_tiny_tasks_are_not_stolen(lag):
    d = Driver()
    rounds = []
    for _ in range(4):
        d.counts.clear()
        d.submit(specs(9000))
        d.run_all(lag=lag)
        d.release(f"t{i}" for i in range(9000))
        assert live(d.sizes()) == {}
        rounds.append(dict(d.counts))
    # rank `lag[0]` goes idle while the others still queue ~3000 tasks each: stealing 1 us tasks
    # would cost a message each way per task, more than running them where they are
    for counts in rounds:
        assert counts.get("steal", 0) == 0, rounds
        assert counts["compute"] == 9000 and counts["freed keys"] == 9000
    assert rounds[1] == rounds[2] == rounds[3], rounds


@pytest.mark.parametrize(
    ("duration", "stolen"),
    [(policy.STEAL_MIN_DURATION / 10, False), (policy.STEAL_MIN_DURATION * 100, True)],
)
def test_only_tasks_worth_a_steal_are_stolen(duration, stolen):
    d = Driver()
    d.submit(specs(60))
    d.run_all(duration=duration, lag=(1,))  # rank 1 idle, ranks 2 and 3 hold 20 tasks each
    assert (d.counts.get("steal", 0) > 0) is stolen


@pytest.mark.parametrize("kind", [dict, set])
@pytest.mark.parametrize(("peak", "left", "rebuilt"), [
    (40_000, 0, True), (40_000, 1_000, True), (40_000, 20_000, False), (40_000, 40_000, False),
    (1_000, 0, False),  # never big: left alone
])
def test_shrink_rebuilds_only_tables_far_below_their_peak(kind, peak, left, rebuilt):
    table = {i: -i for i in range(peak)} if kind is dict else set(range(peak))
    for i in range(peak - left):
        if kind is dict:
            del table[i]
        else:
            table.discard(i)
    before = sys.getsizeof(table)
    keep = list(table.items()) if kind is dict else sorted(table)
    assert tables.shrink(table) is rebuilt
    assert (list(table.items()) if kind is dict else sorted(table)) == keep
    assert (sys.getsizeof(table) < before / 4) is rebuilt
    assert not tables.shrink(table)  # once rebuilt, it fits
