"""Table tests of the placement and stealing policy (pure functions, exact expectations)."""

from __future__ import annotations

import pytest

from hpcdist.errors import HpcdistError, NoValidWorker
from hpcdist.runtime.scheduling import policy
from hpcdist.runtime.scheduling.policy import (
    balance_plan,
    decide_worker,
    ema,
    restriction_error,
    transfer_time,
    valid_workers,
)

# ranks 1 and 2 share host "a"; 3 and 4 are on host "b"
HOSTS = {1: "a", 2: "a", 3: "b", 4: "b"}
MB = 1_000_000


@pytest.mark.parametrize(
    ("deps", "candidates", "who_has", "nbytes", "occupancy", "expected"),
    [
        # no data to move: least occupied, then lowest rank
        ((), {1, 2, 3, 4}, {}, {}, {}, 1),
        ((), {1, 2, 3, 4}, {}, {}, {1: 1.0, 2: 0.5, 3: 0.5, 4: 2.0}, 2),
        ((), {3, 4}, {}, {}, {}, 3),
        # the holder wins although it is the most occupied
        (("x",), {1, 2, 3, 4}, {"x": {3}}, {"x": MB}, {3: 9.0}, 3),
        # same-host copy (1/5 of the bytes) beats a cross-host one when the holder may not run it
        (("x",), {2, 3}, {"x": {1}}, {"x": MB}, {2: 5.0}, 2),
        (("x",), {2, 3}, {"x": {4}}, {"x": MB}, {3: 5.0}, 3),
        # the bigger input decides
        (("x", "y"), {1, 2, 3, 4}, {"x": {1}, "y": {4}}, {"x": MB, "y": 3 * MB}, {}, 4),
        # same host of the big input (0.2 * 3 MB) beats holding the small one (1 MB)
        (("x", "y"), {1, 3}, {"x": {1}, "y": {4}}, {"x": MB, "y": 3 * MB}, {}, 3),
        # broadcast data (held by more than half of the candidates) is ignored: occupancy decides
        (("x",), {1, 2, 3, 4}, {"x": {1, 2, 3}}, {"x": MB}, {1: 1.0, 2: 1.0, 3: 1.0, 4: 0.5}, 4),
        # held by exactly half: still counted
        (("x",), {1, 2, 3, 4}, {"x": {1, 2}}, {"x": MB}, {1: 1.0, 2: 2.0, 4: 0.0}, 1),
        # a dep nobody holds (yet) costs nothing
        (("x",), {1, 2}, {}, {"x": MB}, {1: 1.0}, 2),
        # the same dep listed twice counts once; ties on bytes go to occupancy
        (("x", "x"), {1, 2}, {"x": {3}}, {"x": MB}, {1: 1.0}, 2),
    ],
)
def test_decide_worker_table(deps, candidates, who_has, nbytes, occupancy, expected):
    assert decide_worker(deps, candidates, who_has, nbytes, occupancy, HOSTS) == expected


def test_decide_worker_needs_a_candidate():
    with pytest.raises(ValueError, match="at least one candidate"):
        decide_worker((), set(), {}, {}, {}, HOSTS)


@pytest.mark.parametrize(
    ("alive", "restrict", "allow_other", "expected"),
    [
        ({1, 2, 3}, None, False, {1, 2, 3}),
        ({1, 2, 3}, frozenset({2, 9}), False, {2}),
        ({1, 2, 3}, frozenset({2, 9}), True, {2}),
        ({1, 2, 3}, frozenset({9}), True, {1, 2, 3}),
        ({1, 2, 3}, frozenset({9}), False, set()),
        (set(), None, False, set()),
    ],
)
def test_valid_workers_table(alive, restrict, allow_other, expected):
    assert valid_workers(alive, restrict, allow_other) == frozenset(expected)


def test_restriction_error_names_both_rank_lists():
    err = restriction_error("k", frozenset({9, 7}), {3, 1, 2})
    assert isinstance(err, NoValidWorker) and isinstance(err, HpcdistError)
    assert str(err) == (
        "task 'k' may only run on worker ranks [7, 9], but the live worker ranks are [1, 2, 3];"
        " fix workers= or pass allow_other_workers=True"
    )


def test_ema_starts_at_first_value_then_halves_the_gap():
    assert ema(None, 3.0) == 3.0
    assert ema(1.0, 3.0) == 2.0
    assert ema(2.0, 3.0, alpha=0.25) == 2.25


@pytest.mark.parametrize(
    ("rank", "holders", "seconds"),
    [(1, {1}, 0.0), (2, {1}, 2.0), (3, {1}, 10.0), (3, {1, 4}, 2.0)],
)
def test_transfer_time_uses_same_host_and_cross_host_bandwidths(rank, holders, seconds):
    nbytes = {"x": 10 * 10**9}
    assert transfer_time(rank, ("x",), {"x": holders}, nbytes, HOSTS) == pytest.approx(seconds)


def test_bandwidth_ratio_is_the_placement_discount():
    assert policy.SAME_HOST_FACTOR == policy.CROSS_HOST_BANDWIDTH / policy.SAME_HOST_BANDWIDTH == 0.2


def _plan(idle, processing, durations=None, deps=None, allowed=None, who_has=None, nbytes=None, loads=None):
    durations = durations or {}
    deps = deps or {}
    allowed = allowed or {}
    return balance_plan(
        idle,
        processing,
        lambda k: durations.get(k, 1.0),
        lambda k: deps.get(k, ()),
        lambda k: allowed.get(k),
        who_has or {},
        nbytes or {},
        HOSTS,
        loads,
    )


QUEUE = ["a", "b", "c", "d", "e", "f", "g", "h"]


def test_one_thief_takes_from_the_back_until_balanced():
    assert _plan([2], {1: QUEUE}) == [(2, 1, "h"), (2, 1, "g"), (2, 1, "f"), (2, 1, "e")]


def test_two_thieves_take_turns():
    assert _plan([2, 3], {1: QUEUE}) == [
        (2, 1, "h"),
        (3, 1, "g"),
        (2, 1, "f"),
        (3, 1, "e"),
        (2, 1, "d"),
    ]


def test_a_thief_with_work_of_its_own_takes_less():
    assert _plan([2], {1: QUEUE}, loads={2: 0.0}) == [(2, 1, "h"), (2, 1, "g"), (2, 1, "f"), (2, 1, "e")]
    # a thief that already has 3 s of work takes less
    assert _plan([2], {1: QUEUE}, loads={2: 3.0}) == [(2, 1, "h"), (2, 1, "g")]


@pytest.mark.parametrize(
    "processing",
    [{1: ["a"]}, {1: []}, {}],
)
def test_the_first_of_a_queue_is_never_stolen(processing):
    assert _plan([2], processing) == []


def test_two_task_queue_gives_up_its_second():
    assert _plan([2], {1: ["a", "b"]}) == [(2, 1, "b")]


def test_most_loaded_victim_first():
    plan = _plan([4], {1: ["a", "b"], 3: ["c", "d", "e", "f"]})
    assert plan == [(4, 3, "f"), (4, 3, "e")]


def test_big_inputs_are_not_stolen_but_small_ones_are():
    # every task reads its own input held by rank 1; "h" and "g" read 20 GB (20 s cross-host)
    deps = {k: (k + "_in",) for k in QUEUE}
    who_has = {k + "_in": {1} for k in QUEUE}
    nbytes = {k + "_in": MB for k in QUEUE}
    nbytes.update({"h_in": 20 * 10**9, "g_in": 20 * 10**9})
    plan = _plan([3], {1: QUEUE}, deps=deps, who_has=who_has, nbytes=nbytes)
    assert plan == [(3, 1, "f"), (3, 1, "e"), (3, 1, "d")]


def test_same_host_thief_steals_what_a_remote_one_would_not():
    # "h" (1 s) waits 7 s behind "a"; its 8 GB input takes 8 s cross-host but 1.6 s same-host
    deps = {"h": ("x",)}
    who_has = {"x": {1}}
    nbytes = {"x": 8 * 10**9}
    durations = {"a": 7.0, "h": 1.0}
    queue = {1: ["a", "h"]}
    assert _plan([3], queue, durations, deps, who_has=who_has, nbytes=nbytes) == []
    assert _plan([2], queue, durations, deps, who_has=who_has, nbytes=nbytes) == [(2, 1, "h")]


def test_restrictions_are_respected_when_stealing():
    allowed = {"h": frozenset({1}), "g": frozenset({1, 3})}
    assert _plan([2], {1: QUEUE}, allowed=allowed) == [(2, 1, "f"), (2, 1, "e"), (2, 1, "d")]
    assert _plan([3], {1: QUEUE}, allowed=allowed)[0] == (3, 1, "g")


def test_short_queue_of_long_tasks_versus_thief_load():
    # "b" finishes at 4 + 1 s on rank 1; on a thief with 4.5 s queued at 5.5 s, with 2.5 s at 3.5 s
    assert _plan([2], {1: ["a", "b"]}, durations={"a": 4.0}, loads={2: 4.5}) == []
    assert _plan([2], {1: ["a", "b"]}, durations={"a": 4.0}, loads={2: 2.5}) == [(2, 1, "b")]


@pytest.mark.parametrize(
    ("duration", "stolen"),
    [
        (1e-5, 0),  # 100 tasks of 10 us: 1 ms of waiting saves less than a steal costs
        (1e-3, 49),  # 1 ms tasks: half the queue, less what the steal's latency covers
        (1.0, 50),  # long tasks: an even split
    ],
)
def test_tasks_shorter_than_a_steal_round_trip_stay_where_they_are(duration, stolen):
    queue = [f"t{i}" for i in range(100)]
    plan = _plan([2], {1: queue}, durations={k: duration for k in queue})
    assert len(plan) == stolen
    assert all(victim == 1 for _, victim, _ in plan)


@pytest.mark.parametrize("seed", range(20))
def test_decide_worker_is_the_documented_minimum(seed):
    """Fewest weighted bytes (broadcast deps left out), then occupancy, then rank, on random tables."""
    import random

    rng = random.Random(seed)
    ranks = sorted(rng.sample(range(1, 9), rng.randint(1, 6)))
    hosts = {r: rng.choice("ab") for r in range(1, 9)}
    keys = [f"k{i}" for i in range(6)]
    who_has = {k: set(rng.sample(range(1, 10), rng.randint(0, 4))) for k in keys}
    nbytes = {k: rng.choice([0, 10, MB, 3 * MB]) for k in keys}
    occupancy = {r: rng.choice([0.0, 0.5, 1.0]) for r in ranks}
    deps = tuple(rng.choices(keys, k=rng.randint(0, 4)))
    counted = [d for d in dict.fromkeys(deps) if len(set(ranks) & who_has[d]) <= len(ranks) / 2]
    want = min(
        ranks,
        key=lambda r: (policy.bytes_to_receive(r, counted, who_has, nbytes, hosts), occupancy.get(r, 0.0), r),
    )
    assert decide_worker(deps, set(ranks), who_has, nbytes, occupancy, hosts) == want


# ---------------------------------------------------------------- which holder sends an input

HOST_OF = {1: "a", 2: "a", 3: "b", 4: "b", 5: "b"}.get


@pytest.mark.parametrize(
    "holders, rank, expected",
    [
        ([3, 1, 2], 1, [1, 2, 3]),  # the rank itself, then its host, then the others
        ([4, 3, 2, 1], 2, [2, 1, 3, 4]),
        ([4, 3, 1], 2, [1, 3, 4]),  # same host first
        ([1, 2, 5, 4], 3, [4, 5, 1, 2]),
        ([], 1, []),
        ([9, 1], 3, [1, 9]),  # an unknown rank's host matches nobody's
    ],
)
def test_holder_order(holders, rank, expected):
    assert policy.holder_order(holders, rank, HOST_OF) == expected


@pytest.mark.parametrize(
    "holders, rank, expected",
    [
        ([1, 2, 3], 2, 1),  # same-host pool [1, 2]: index 2 % 2
        ([1, 2, 3], 1, 2),  # pool [1, 2]: index 1 % 2
        ([3, 4], 1, 4),  # no holder on rank 1's host: all of them, index 1 % 2
        ([3, 4, 5], 1, 4),
        ([3, 4, 5], 4, 4),  # pool [3, 4, 5]: index 4 % 3
        ([5, 1], 3, 5),  # pool [5]
        ([1], 4, 1),
    ],
)
def test_pick_holder(holders, rank, expected):
    assert policy.pick_holder(holders, rank, HOST_OF) == expected
