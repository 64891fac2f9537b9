"""Table tests of the failure detector's liveness table (pure: times in microseconds)."""

import pytest

from hpcdist.errors import HpcdistError
from hpcdist.transports.liveness import FAILURE_TIMEOUT, SCHEDULER_SLACK, Liveness, failure_timeout, for_rank

US = 1e-6


def table(watch=(1, 2, 3), bound=2.0, now=0.0, size=4):
    return Liveness(size, watch, bound, now)


def test_defaults_follow_the_bound():
    t = table(bound=2.0)
    assert (t.interval, t.deaf_after) == (0.5, 1.0)
    assert t.watched == [1, 2, 3]


def test_a_rank_heard_within_the_bound_is_not_silent():
    t = table()
    for step in range(1, 40):  # a look every 0.1 s, rank 1 speaks every 0.3 s
        now = step * 0.1
        if step % 3 == 0:
            t.heard(1)
        gone = dict(t.silent(now))
        if now > 2.0:
            assert 1 not in gone
    assert t.watching(1)


def test_silent_past_the_bound_is_reported_once_and_unwatched():
    t = table()
    now = 0.0
    reported = []
    while now < 3.0:
        now += 0.1
        t.heard(1)
        t.heard(3)
        reported += t.silent(now)
    assert [r for r, _ in reported] == [2]
    assert reported[0][1] == pytest.approx(2.1, abs=0.11)  # how long it was silent
    assert not t.watching(2) and t.watching(1)
    assert t.silent(now + 10 * 0.1) == []  # 1 and 3 went quiet only 1 s ago ...
    t.heard(2)  # ... and a late word from 2 changes nothing
    assert 2 not in t.watched


def test_exactly_the_bound_is_not_past_it():
    t = table(watch=[1], bound=1000 * US)
    assert t.silent(400 * US) == []
    assert t.silent(800 * US) == []
    assert t.silent(1000 * US) == []
    assert t.silent(1001 * US) == [(1, pytest.approx(1001 * US))]


def test_heard_is_folded_at_the_look_not_at_the_mark():
    t = table(watch=[1], bound=1000 * US)
    t.silent(400 * US)
    t.heard(1)  # marked at some time in (400, 800] us: counts as heard at 800
    assert t.silent(800 * US) == []
    assert t.silent(1200 * US) == []
    assert t.silent(1600 * US) == []
    assert t.silent(1800 * US) == []
    assert [r for r, _ in t.silent(1801 * US)] == [1]


def test_deaf_time_is_not_held_against_the_peers():
    t = table(watch=[1, 2], bound=1000 * US)  # deaf after 500 us
    assert t.silent(400 * US) == []
    # this rank did not look for 5 ms (a GIL-holding driver, SIGSTOP): nobody is blamed
    assert t.silent(5400 * US) == []
    t.heard(1)
    assert t.silent(5800 * US) == []
    # from the end of the deaf gap on, silence counts again
    assert [r for r, _ in t.silent(6200 * US)] == [2]
    assert t.watched == [1]


def test_a_gap_under_the_deaf_threshold_counts():
    t = table(watch=[1], bound=1000 * US)
    assert t.silent(450 * US) == []
    assert t.silent(900 * US) == []  # gaps of 450 us: listening all along
    assert [r for r, _ in t.silent(1350 * US)] == [1]


def test_due_beats_only_to_ranks_not_sent_to_for_the_interval():
    t = table(watch=[1, 2, 3], bound=1000 * US)  # interval 250 us
    assert t.due_beats(100 * US) == []
    t.sent(1)
    assert t.due_beats(200 * US) == []
    assert t.due_beats(300 * US) == [2, 3]  # 1 was posted to at 200 us
    assert t.due_beats(400 * US) == []  # the beats just sent count as posts
    assert t.due_beats(450 * US) == [1]
    t.sent(2)
    t.sent(3)
    assert t.due_beats(560 * US) == []


def test_beats_are_due_at_once_after_deaf_time():
    t = table(watch=[1], bound=1000 * US)
    assert t.due_beats(100 * US) == []
    assert t.due_beats(9000 * US) == [1]


def test_unwatched_ranks_get_no_beats_and_are_never_silent():
    t = table(watch=[1, 2], bound=1000 * US)
    t.unwatch(2)
    t.unwatch(2)
    assert t.due_beats(400 * US) == [1]
    assert t.silent(800 * US) == []
    assert [r for r, _ in t.silent(1200 * US)] == [1]
    assert t.watched == []


def test_a_worker_watches_rank_0_only():
    t = Liveness(4, [0], 1000 * US, 0.0)
    t.heard(2)  # a peer worker: not watched, its flag never matters
    assert t.due_beats(300 * US) == [0]
    assert t.silent(700 * US) == []
    assert [r for r, _ in t.silent(1100 * US)] == [0]


def test_a_worker_gives_rank_0_more_slack_but_beats_as_often_as_rank_0_needs():
    bound = 1000 * US
    zero, worker = for_rank(0, 4, bound, 0.0), for_rank(2, 4, bound, 0.0)
    assert zero.watched == [1, 2, 3] and zero.bound == bound
    assert worker.watched == [0] and worker.bound == bound * SCHEDULER_SLACK
    assert worker.interval == zero.interval and worker.deaf_after == zero.deaf_after
    # rank 0 silent while the worker keeps looking (no deaf time): lost only past five bounds
    assert [t for t in range(1, 30) if worker.silent(t * 200 * US)] == [26]


def test_bad_bound():
    with pytest.raises(ValueError):
        Liveness(2, [1], 0.0, 0.0)


@pytest.mark.parametrize("text, value", [("", FAILURE_TIMEOUT), ("1", 1.0), (" 0.25 ", 0.25)])
def test_failure_timeout_from_the_environment(text, value):
    assert failure_timeout({"HPCDIST_FAILURE_TIMEOUT": text}) == value
    assert failure_timeout({}) == FAILURE_TIMEOUT


@pytest.mark.parametrize("text", ["0", "-1", "soon", "inf", "nan"])
def test_failure_timeout_rejects_bad_values(text):
    with pytest.raises(HpcdistError, match="HPCDIST_FAILURE_TIMEOUT"):
        failure_timeout({"HPCDIST_FAILURE_TIMEOUT": text})
