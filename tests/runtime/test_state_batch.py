"""SchedulerState.handle_many: a batch of events ends in the state, and produces the instructions,
of handling the same events one at a time (frees merged per rank, stealing planned at the end).

Each scenario is a setup (events handled one at a time) and a script that produces the batch's
events from the state as it evolves (e.g. "rank 1 finishes the first task of its queue"). The
script runs once against a state handling its events one at a time, which records the events;
a second state with the same setup then gets the recorded events as one batch.
"""

from __future__ import annotations

import random

import pytest

from hpcdist.runtime.scheduling import placement, policy
from hpcdist.runtime.scheduling.transitions import LOG_MAX
from hpcdist.runtime.scheduling.vocabulary import Cancel, Failed, Finished, RankLost, Release, Scatter, StealReply, Submit, TaskSpec
from hpcdist.runtime.scheduling.state import SchedulerState
from hpcdist.runtime.scheduling.vocabulary import Compute, Free, Memory, Steal

HOSTS = {1: "a", 2: "a", 3: "b"}
T = TaskSpec


class Recorder:
    """Hands events to a state one at a time, with increasing times; records events and output."""

    def __init__(self, state: SchedulerState, t: float = 0.0) -> None:
        self.s, self.t, self.events, self.outs = state, t, [], []

    def __call__(self, event_type, *args):
        self.t += 1.0
        event = event_type(self.t, *args)
        self.events.append(event)
        out = self.s.handle(event)
        self.s.validate()
        self.outs.append(out)
        return out

    def head(self, rank):
        """The first key queued on ``rank`` (the one it runs now)."""
        return self.s.processing_on(rank)[0]

    def finish(self, rank, nbytes=10, duration=1.0):
        key = self.head(rank)
        deps = self.s._tasks[key].spec.deps
        fetched = tuple(d for d in deps if rank not in self.s.who_has([d])[d])
        return self(Finished, key, rank, nbytes, duration, fetched)


def plain(error: object) -> object:
    """Errors created by two states are equal when their type and message are."""
    return (type(error).__name__, str(error)) if isinstance(error, BaseException) else error


def snapshot(s: SchedulerState) -> dict:
    tasks = {
        k: (
            ts.state, ts.wanted, ts.runnable, ts.processing_on, ts.expected, ts.retries_left,
            sorted(ts.failed_on), sorted(ts.waiting_on), sorted(ts.dependents), ts.nbytes, plain(ts.error),
        )
        for k, ts in ((ts.key, ts) for ts in s.tasks())
    }
    return {
        "tasks": tasks,
        "order": [ts.key for ts in s.tasks()],
        "who_has": s.who_has(),
        "has_what": s.has_what(),
        "processing": {r: s.processing_on(r) for r in s.workers},
        "occupancy": {r: s.occupancy(r) for r in s.workers},
        "steals": s.worker_table.steals(),
        "durations": dict(s.durations),
        "log": list(s.log),
        "forgotten": s.pop_forgotten(),
    }


def split(outs: list[list[tuple]]) -> tuple[list[tuple], dict[int, set[str]]]:
    """Instructions other than frees, in order, and the keys freed per rank."""
    others, frees = [], {}
    for out in outs:
        for ins in out:
            if type(ins) is Free:
                frees.setdefault(ins.rank, set()).update(ins.keys)
            else:
                others.append(tuple(plain(x) for x in ins))
    return others, frees


def freed_after_compute(outs: list[list[tuple]]) -> set[tuple[int, str]]:
    """(rank, key) pairs whose free comes after a compute of the key on that rank."""
    computed, late = set(), set()
    for out in outs:
        for ins in out:
            if type(ins) is Compute:
                computed.add((ins.rank, ins.key))
            elif type(ins) is Free:
                late.update((ins.rank, k) for k in ins.keys if (ins.rank, k) in computed)
    return late


def unsent_to_lost(events: list, outs: list[list[tuple]]) -> list[list[tuple]]:
    """The one-at-a-time outputs without what a batch no longer sends once a later event of it
    lost a rank: instructions to that rank, and that rank as a holder in a Compute (a Compute
    left with no holder for an input is dropped: the loss restarts that task)."""
    kept_outs = []
    for i, out in enumerate(outs):
        lost = {ev.rank for ev in events[i + 1 :] if type(ev) is RankLost}
        kept = []
        for ins in out:
            if type(ins) in (Compute, Free, Steal) and ins.rank in lost:
                continue
            if type(ins) is Compute:
                deps = {d: [r for r in h if r not in lost] for d, h in ins.deps.items()}
                if not all(deps.values()):
                    continue
                ins = Compute(ins.rank, ins.key, deps)
            kept.append(ins)
        kept_outs.append(kept)
    return kept_outs


# ---------------------------------------------------------------- scenarios: (setup, batch script)


def independent_setup(r):
    r(Submit, tuple(T(k, fn_name="f") for k in "abcdefg"))  # 1: a d g, 2: b e, 3: c f


def independent_batch(r):
    r.finish(2)
    r.finish(1)
    r(Release, ("a", "b"))
    r.finish(3)
    r.finish(1)


def chain_setup(r):
    r(Submit, (T("a"), T("b", ("a",)), T("c", ("b",)), T("x")))
    r(Release, ("a", "b"))  # only c is wanted: a and b are lineage


def chain_batch(r):
    for _ in range(3):
        r.finish(1)
    r(Release, ("c",))


def tree_setup(r):
    leaves = [T(f"l{i}", fn_name="load") for i in range(6)]
    mid = [T("m0", ("l0", "l1", "l2"), "sum"), T("m1", ("l3", "l4", "l5"), "sum")]
    r(Submit, (*leaves, *mid, T("root", ("m0", "m1"), "sum")))
    r(Release, tuple(s.key for s in leaves + mid))


def tree_batch(r):
    for rank in (1, 2, 3, 1, 2, 3):
        r.finish(rank, nbytes=1000)


def retry_setup(r):
    r(Submit, (T("a", retries=2), T("b", ("a",)), T("busy"), T("c", retries=0)))


def retry_batch(r):
    r(Failed, "c", 3, "e-c")  # c has no retries: erred
    r(Failed, "a", 1, "e1")  # retried on rank 3: free, and a has not failed there
    r(Failed, "a", 3, "e2")  # no free rank left where it has not failed: the usual choice
    r.finish(1)
    r.finish(1)


def cancel_setup(r):
    r(Submit, (T("a"), T("b", ("a",)), T("c", ("b",)), T("d")))


def cancel_batch(r):
    r(Cancel, ("b",))
    r(Cancel, ("a",))  # a is processing: dropped on its worker
    r(Finished, "a", 1, 10, 1.0, ())  # its late result is freed
    r(Release, ("b", "c"))
    r(Submit, (T("b", ("a",)),))  # submitted again onto a cancelled dependency


def release_setup(r):
    r(Submit, (T("a"), T("b", ("a",)), T("c", ("a",)), T("e")))
    r.finish(1)


def release_batch(r):
    r(Release, ("a",))  # still needed by b and c: kept
    r.finish(1)
    r(Release, ("b",))
    r.finish(1)  # c: a's data is freed now, a is forgotten once c is released
    r(Release, ("c",))
    r(Submit, (T("f", ("a",)),))  # a is gone: f errs


def worker_lost_setup(r):
    r(Scatter, "x", (1,), 1000)
    r(Submit, (T("b2", workers=frozenset({2})), T("b3", workers=frozenset({3}))))
    r(Submit, tuple(T(f"t{i}", ("x",)) for i in range(4)))
    r.finish(2)  # rank 2 steals t3 and t2 from rank 1


def worker_lost_batch(r):
    r(StealReply, "t3", 1, True)
    r(RankLost, 2)
    r(StealReply, "t2", 1, False)
    r.finish(1, nbytes=5)
    r(Scatter, "y", (3, 1), 20)


SCENARIOS = {
    "independent": (independent_setup, independent_batch),
    "chain": (chain_setup, chain_batch),
    "tree": (tree_setup, tree_batch),
    "failure-with-retries": (retry_setup, retry_batch),
    "cancel": (cancel_setup, cancel_batch),
    "release-of-keys-still-needed": (release_setup, release_batch),
    "worker-lost-and-steals": (worker_lost_setup, worker_lost_batch),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_batch_equals_one_at_a_time(name):
    setup, batch = SCENARIOS[name]
    one, many = Recorder(SchedulerState(dict(HOSTS))), Recorder(SchedulerState(dict(HOSTS)))
    setup(one)
    setup(many)
    assert snapshot(one.s) == snapshot(many.s)
    start = len(one.events)
    batch(one)
    events, outs = one.events[start:], one.outs[start:]
    assert len(events) >= 4
    outs = unsent_to_lost(events, outs)

    out = many.s.handle_many(events)
    many.s.validate()

    assert snapshot(many.s) == snapshot(one.s)
    others, frees = split(outs)
    got_others, got_frees = split([out])
    assert got_others == others
    assert got_frees == frees
    assert freed_after_compute([out]) == freed_after_compute(outs)
    free_ranks = [ins.rank for ins in out if type(ins) is Free]
    assert free_ranks == sorted(set(free_ranks)), "one free per rank, in rank order, at the end"
    assert all(type(ins) is Free for ins in out[len(out) - len(free_ranks) :])


def test_handle_is_a_batch_of_one():
    a, b = SchedulerState(dict(HOSTS)), SchedulerState(dict(HOSTS))
    ev = Submit(1.0, (T("a"), T("b", ("a",))))
    assert a.handle(ev) == b.handle_many([ev]) == [Compute(1, "a", {})]
    assert b.handle_many([]) == []
    assert snapshot(a) == snapshot(b)


def test_unknown_event_rejects_the_whole_batch_before_applying_any():
    s = SchedulerState(dict(HOSTS))
    with pytest.raises(TypeError, match="unknown event type object"):
        s.handle_many([Submit(1.0, (T("a"),)), object()])
    assert s.state_of("a") is None and len(s.log) == 0


def test_a_key_freed_then_computed_again_on_the_rank_is_freed_first():
    s = SchedulerState(dict(HOSTS))
    s.handle(Submit(1.0, (T("a"), T("b"))))
    s.handle(Finished(2.0, "a", 1, 10, 1.0))
    out = s.handle_many([Release(3.0, ("a", "b")), Submit(4.0, (T("a"), T("c")))])
    # b's drop and a's free come before a is computed again on rank 1 (and merged there)
    assert out == [Steal(2, "b"), Free(1, ["a"]), Compute(1, "a", {}), Compute(2, "c", {})]
    s.validate()


def test_stealing_is_planned_once_from_the_state_the_batch_ends_in():
    """Rank 1 is idle only between two events: one at a time it steals, in a batch it does not."""
    one, many = SchedulerState(dict(HOSTS)), SchedulerState(dict(HOSTS))
    for s in (one, many):
        s.handle(Submit(1.0, tuple(T(k) for k in "abcdef")))  # 1: a d, 2: b e, 3: c f
        s.handle(Finished(2.0, "a", 1, 10, 1.0))
    events = [Finished(3.0, "d", 1, 10, 1.0), Submit(4.0, (T("h"),))]
    outs = [one.handle(ev) for ev in events]
    assert outs == [[Memory("d"), Steal(2, "e")], [Compute(1, "h", {})]]
    # in the batch rank 1 gets h at once, so nothing is stolen for it
    assert many.handle_many(events) == [Memory("d"), Compute(1, "h", {})]
    many.validate()
    assert many.processing_on(1) == ["h"] and many.processing_on(2) == ["b", "e"]


# ---------------------------------------------------------------- the fast placement path


@pytest.mark.parametrize("seed", range(5))
def test_fast_placement_is_what_decide_worker_says(seed):
    """Tasks without deps or restrictions skip decide_worker; the choice must be the same."""
    rng = random.Random(seed)
    hosts = {r: "ab"[r % 2] for r in rng.sample(range(1, 12), 6)}
    s = SchedulerState(hosts)
    for i in range(60):
        fn = rng.choice("fgh")
        occupancy = {r: s.occupancy(r) for r in hosts}
        want = policy.decide_worker((), frozenset(hosts), {}, {}, occupancy, hosts)
        (ins,) = [i for i in s.handle(Submit(float(i), (T(f"k{i}", fn_name=fn),))) if type(i) is Compute]
        assert ins.rank == want
        if rng.random() < 0.5:  # finish something, so durations and queues vary
            rank = rng.choice([r for r in hosts if s.processing_on(r)])
            key = s.processing_on(rank)[0]
            s.handle(Finished(float(i), key, rank, 1, rng.choice([0.1, 0.25, 1.0])))
        s.validate()


# ---------------------------------------------------------------- the bounded log


def test_log_keeps_the_most_recent_transitions():
    s = SchedulerState({1: "a"})
    assert s.log.maxlen == LOG_MAX
    s.log = type(s.log)(maxlen=10)  # the same bound, small enough to test
    for i in range(4):
        key = f"k{i}"
        s.handle(Submit(float(i), (T(key),)))
        s.handle(Finished(float(i) + 0.5, key, 1, 1, 1.0))
        s.handle(Release(float(i) + 0.7, (key,)))
        s.validate()
    assert len(s.log) == 10
    assert s.log[-1] == (3.7, "k3", "memory", "forgotten", "")
    assert s.history("k0") == []  # dropped with the oldest transitions
    assert [b for _, _, b in s.history("k3")] == ["released", "ready", "processing", "memory", "forgotten"]


# ---------------------------------------------------------------- random batches


def _random_batches(seed, rounds=60, nkeys=12):
    """Random batches from a model world, handled by two states: one at a time and as a batch.

    The caller switches stealing off (its timing is the one documented difference, tested above);
    everything else must agree after every batch.
    """
    rng = random.Random(seed)
    hosts = {1: "a", 2: "a", 3: "b", 4: "b"}
    one, many = SchedulerState(dict(hosts)), SchedulerState(dict(hosts))
    queues = {r: [] for r in hosts}
    keys = [f"k{i}" for i in range(nkeys)]
    wanted: set[str] = set()
    t = 0.0

    def spec(i):
        r = random.Random(i)  # pure keys: one key, one spec
        deps = tuple(sorted(r.sample(keys[:i], min(i, r.randint(0, 2)))))
        restrict = frozenset(r.sample([1, 2, 3, 4], 2)) if r.random() < 0.2 else None
        return T(keys[i], deps, "fg"[i % 2], restrict, r.random() < 0.5, r.randint(0, 1))

    for _ in range(rounds):
        events = []
        for _ in range(rng.randint(1, 6)):
            t += 1.0
            x = rng.random()
            busy = [r for r in queues if queues[r]]
            if x < 0.2:
                specs = tuple(spec(rng.randrange(nkeys)) for _ in range(rng.randint(1, 3)))
                wanted.update(sp.key for sp in specs)
                events.append(Submit(t, specs))
            elif x < 0.3 and wanted:
                key = rng.choice(sorted(wanted))
                wanted.discard(key)
                events.append(Release(t, (key,)))
            elif x < 0.35 and wanted:
                events.append(Cancel(t, (rng.choice(sorted(wanted)),)))
            elif x < 0.37 and len(queues) > 2:
                rank = rng.choice(sorted(queues))
                del queues[rank]
                events.append(RankLost(t, rank))
            elif busy:
                rank = rng.choice(busy)
                key, deps = queues[rank].pop(0)
                if rng.random() < 0.15:
                    events.append(Failed(t, key, rank, f"error of {key}"))
                else:
                    events.append(Finished(t, key, rank, rng.randint(1, 10**6), rng.random(), deps))
        outs = [one.handle(ev) for ev in events]
        out = many.handle_many(events)
        one.validate()
        many.validate()
        assert snapshot(many) == snapshot(one)
        outs = unsent_to_lost(events, outs)
        others, frees = split(outs)
        got_others, got_frees = split([out])
        assert got_others == others
        assert got_frees == frees
        assert freed_after_compute([out]) == freed_after_compute(outs)
        for ins in out:
            if type(ins) is Compute and ins.rank in queues:
                queues[ins.rank].append((ins.key, tuple(ins.deps)))
            elif type(ins) is Steal and ins.rank in queues:
                queues[ins.rank] = [q for q in queues[ins.rank] if q[0] != ins.key]


@pytest.mark.parametrize("seed", range(30))
def test_random_batches_equal_one_at_a_time(seed, monkeypatch):
    monkeypatch.setattr(placement, "steal_plan", lambda *args: [])  # no stealing (see _random_batches)
    _random_batches(seed)
