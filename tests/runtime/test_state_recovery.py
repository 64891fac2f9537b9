"""Recovery of the scheduler state from the loss of a worker (RankLost), table-tested.

Every event is followed by validate(), and no instruction after a rank was lost addresses it
(as the worker of a Compute, Free or Steal, or as the holder of an input in a Compute).
"""

from __future__ import annotations

import concurrent.futures
import pickle

import pytest

from hpcdist.errors import KilledWorker, NoValidWorker, WorkerLost
from hpcdist.runtime.scheduling.recovery import DEFAULT_ALLOWED_FAILURES, running_task
from hpcdist.runtime.scheduling.state import SchedulerState
from hpcdist.runtime.scheduling.vocabulary import (
    RECOVERED_KEYS_MAX, Cancel, Cancelled, Compute, Erred, Failed, Finished, Free, Memory, RankLost, Recovered, Release,
    Scatter, Steal, StealReply, Submit, TaskSpec,
)
from test_state import HOSTS, Sim

T = TaskSpec
FOUR = {1: "a", 2: "a", 3: "b", 4: "b"}


class RSim(Sim):
    """Sim (validate() after every event) that also checks nothing is addressed to a lost rank."""

    def __init__(self, workers=None, **kwargs):
        super().__init__(workers)
        self.s = SchedulerState(dict(HOSTS if workers is None else workers), **kwargs)
        self.lost: set[int] = set()

    def __call__(self, event_type, *args, **kwargs):
        if event_type is RankLost:
            self.lost.add(args[0])
        out = super().__call__(event_type, *args, **kwargs)
        self.check(out)
        return out

    def batch(self, *events):
        self.lost.update(ev.rank for ev in events if type(ev) is RankLost)
        out = self.s.handle_many(list(events))
        self.s.validate()
        self.check(out)
        return out

    def lose(self, rank, running=None):
        return self(RankLost, rank, running)

    def check(self, out):
        for ins in out:
            if type(ins) in (Compute, Free, Steal):
                assert ins.rank not in self.lost, f"{ins} addresses a lost rank"
            if type(ins) is Compute:
                for dep, holders in ins.deps.items():
                    assert holders and not set(holders) & self.lost, f"{ins}: holders of {dep!r}"

    def snapshot(self):
        return {
            ts.key: (ts.state, ts.processing_on, ts.wanted, ts.retries_left, ts.killed_on, sorted(ts.waiting_on))
            for ts in self.s.tasks()
        }

    def killed_on(self, key):
        return self.s.task(key).killed_on


def computes(out):
    return [(i.rank, i.key) for i in out if type(i) is Compute]


def erred(out):
    return {i.key: i.error for i in out if type(i) is Erred}


def cost(out, rank):
    """The one Recovered of a loss: the last instruction of the event, naming the rank."""
    costs = [i for i in out if type(i) is Recovered]
    assert costs == [out[-1]] and costs[0].rank == rank, out
    return costs[0]


def recovered(rank, running=(), requeued=(), recomputed=(), erred=()):
    """The Recovered expected of a loss, from key -> deaths for ``running`` and key lists."""
    return Recovered(rank, tuple(running), tuple(running.values()) if running else (), tuple(requeued),
                     tuple(recomputed), tuple(erred), len(requeued), len(recomputed), len(erred))


# ---------------------------------------------------------------- which tasks go back, which are suspect


def test_idle_worker_lost_changes_only_the_worker_table():
    sim = RSim()
    sim.submit(T("a"), T("b"), T("c", ("a",)))
    sim(Scatter, "x", (1, 2), 10)
    before, holdings = sim.snapshot(), sim.s.who_has()
    assert sim.lose(3) == [Recovered(3)]  # it cost nothing
    assert sim.lose(3) == [] and sim.lose(9) == []  # already lost, never known: no event at all
    assert sim.snapshot() == before and sim.s.who_has() == holdings
    assert sorted(sim.s.workers) == [1, 2] and 3 not in sim.s.has_what()


def test_worker_running_a_task_puts_it_back_and_counts_the_death():
    sim = RSim()
    sim.submit(T("a", retries=2))
    out = sim.lose(1)
    assert out == [Compute(2, "a", {}), recovered(1, {"a": 1}, requeued="a")]
    assert sim.killed_on("a") == (1,) and sim.s.task("a").retries_left == 2
    assert sim.done("a", 2) == [Memory("a")]


def test_worker_with_a_queue_puts_every_task_back_and_only_the_head_is_suspect():
    sim = RSim()
    sim.submit(*(T(k) for k in "abcdefg"))
    assert sim.s.processing_on(1) == ["a", "d", "g"]
    out = sim.lose(1)
    assert sorted(k for _, k in computes(out)) == ["a", "d", "g"]
    assert cost(out, 1) == recovered(1, {"a": 1}, requeued="adg")
    assert [sim.killed_on(k) for k in "adg"] == [(1,), (), ()]
    assert all(sim.state(k) == "processing" and sim.s.task(k).processing_on in (2, 3) for k in "abcdefg")


def test_running_rule_is_the_head_of_the_queue_unless_a_cancelled_task_still_runs():
    sim = RSim({1: "a", 2: "a"})
    sim.submit(T("a"), T("b"), T("c"))
    assert running_task(sim.s.worker_table[1]) == "a"
    sim(Cancel, ("a",))  # rank 1 may still run it: busy until it reports
    assert sim.s.processing_on(1) == ["c"] and running_task(sim.s.worker_table[1]) is None
    sim.lose(1)
    assert sim.killed_on("c") == ()


def test_the_event_may_name_the_running_task():
    sim = RSim()
    sim.submit(*(T(k) for k in "abcd"))
    assert sim.s.processing_on(1) == ["a", "d"]
    out = sim.lose(1, running=("d",))  # the runtime knew better (its last words, its state file)
    assert (sim.killed_on("a"), sim.killed_on("d")) == ((), (1,))
    assert cost(out, 1) == recovered(1, {"d": 1}, requeued="ad")
    out = sim.lose(2, running=())  # it was idle: nobody is suspect
    assert cost(out, 2) == recovered(2, requeued="ab")  # a had gone there from rank 1
    assert sim.killed_on("b") == ()


# ---------------------------------------------------------------- KilledWorker


def test_repeated_deaths_reach_allowed_failures_and_the_task_errs_with_killed_worker():
    sim = RSim(FOUR)
    sim.submit(T("f-3", fn_name="f"), T("g", ("f-3",)), T("other"))
    assert sim.s.allowed_failures == DEFAULT_ALLOWED_FAILURES == 3
    dead = []
    for _ in range(2):
        dead.append(sim.s.task("f-3").processing_on)
        out = sim.lose(dead[-1])
        assert computes(out) and sim.state("f-3") == "processing"
    assert sim.killed_on("f-3") == tuple(dead) == (1, 3)
    dead.append(sim.s.task("f-3").processing_on)
    out = sim.lose(dead[-1])
    errors = erred(out)
    assert sorted(errors) == ["f-3", "g"] and errors["g"] is errors["f-3"]
    assert cost(out, dead[-1]) == recovered(dead[-1], {"f-3": 3}, erred=["f-3", "g"])
    error = errors["f-3"]
    assert type(error) is KilledWorker and isinstance(error, WorkerLost)
    assert dead == [1, 3, 4]
    assert str(error) == "task 'f-3' was running on 3 workers that died (ranks 1, 3, 4); it is not tried again"
    assert (error.key, error.ranks) == ("f-3", (1, 3, 4))
    assert sim.state("f-3") == sim.state("g") == "erred"
    assert sim.state("other") == "processing" and sim.s.task("other").processing_on == 2


def test_allowed_failures_of_one_errs_at_the_first_death():
    sim = RSim(allowed_failures=1)
    sim.submit(T("a"), T("b"), T("c"), T("d"))
    out = sim.lose(1)
    assert erred(out) == {"a": sim.s.error_of("a")}
    assert str(sim.s.error_of("a")) == "task 'a' was running on 1 worker that died (rank 1); it is not tried again"
    assert ("d" in [k for _, k in computes(out)]) and sim.state("d") == "processing"  # innocent: placed again


def test_allowed_failures_must_be_positive():
    with pytest.raises(ValueError, match="allowed_failures"):
        SchedulerState(dict(HOSTS), allowed_failures=0)


def test_killed_worker_pickles_and_is_a_broken_executor():
    error = pickle.loads(pickle.dumps(KilledWorker("k", (4, 2))))
    assert (error.key, error.ranks) == ("k", (4, 2)) and "ranks 4, 2" in str(error)
    assert isinstance(error, concurrent.futures.BrokenExecutor)


def test_killed_worker_errs_dependents_released_with_it():
    sim = RSim({1: "a", 2: "a"}, allowed_failures=1)
    sim.submit(T("a"), T("b", ("a",), workers=frozenset({1})))
    sim.done("a", 1)
    sim.submit(T("c", ("b",)))
    assert sim.s.processing_on(1) == ["b"]
    out = sim.lose(1)  # b was running: killed; a (only on rank 1) is no longer needed
    assert erred(out).keys() == {"b", "c"} and type(erred(out)["c"]) is KilledWorker
    assert computes(out) == [(2, "a")]  # a is wanted: recomputed anyway
    assert cost(out, 1) == recovered(1, {"b": 1}, recomputed="a", erred="bc")


# ---------------------------------------------------------------- retries are the task's own


def test_worker_loss_keeps_the_retries_of_a_task():
    sim = RSim()
    sim.submit(T("a", retries=1))
    sim.lose(1)
    assert sim.s.task("a").retries_left == 1 and sim.s.task("a").processing_on == 2
    out = sim(Failed, "a", 2, "boom")
    assert computes(out) == [(3, "a")] and sim.s.task("a").retries_left == 0
    out = sim(Failed, "a", 3, "boom again")
    assert out == [Erred("a", "boom again")]  # its own error, not the worker's


def test_a_retried_task_that_loses_its_worker_keeps_its_remaining_retries():
    sim = RSim(FOUR)
    sim.submit(T("a", retries=2))
    out = sim(Failed, "a", 1, "boom")
    assert sim.s.task("a").retries_left == 1
    (rank,) = [r for r, _ in computes(out)]
    sim.lose(rank)
    ts = sim.s.task("a")
    assert ts.retries_left == 1 and ts.killed_on == (rank,) and ts.state == "processing"
    sim(Failed, "a", ts.processing_on, "boom")
    assert sim.state("a") == "processing" and sim.s.task("a").retries_left == 0


def test_a_failure_flagged_as_infrastructure_places_the_task_again_and_keeps_its_retries():
    sim = RSim()
    sim.submit(T("a", retries=0))
    rank = sim.s.task("a").processing_on
    out = sim(Failed, "a", rank, "peer gone", infrastructure=True)
    ts = sim.s.task("a")
    assert ts.state == "processing" and len(computes(out)) == 1 and not erred(out)
    assert ts.retries_left == 0 and ts.failed_on == frozenset() and ts.killed_on == ()
    out = sim(Failed, "a", ts.processing_on, "boom")  # then its own error: no retries to spend
    assert out == [Erred("a", "boom")]


def test_an_infrastructure_failure_of_a_task_already_taken_back_changes_nothing():
    sim = RSim(FOUR)
    sim.submit(T("x", workers=frozenset({1}), allow_other_workers=True), T("y", ("x",), workers=frozenset({3})))
    sim.done("x", 1)
    yr = sim.s.task("y").processing_on
    out = sim.lose(1)  # the only copy of x: y is taken back from rank 3, x recomputed
    assert Steal(3, "y") in out and yr == 3 and sim.state("x") == "processing"
    before = sim.snapshot()
    assert sim(Failed, "y", yr, "peer gone", infrastructure=True) == [] and sim.snapshot() == before


# ---------------------------------------------------------------- lineage


def _chain_on_rank_1(sim):
    """a -> b -> c, computed on rank 1 (only c wanted: a and b are released as c finishes), and
    d (needs c) restricted to rank 2, sent there: c's only copy is on rank 1."""
    sim.submit(T("a"), T("b", ("a",)), T("c", ("b",)), T("d", ("c",), workers=frozenset({2})))
    sim(Release, ("a", "b", "c"))
    for key in "abc":
        sim.done(key, 1)
    assert [sim.state(k) for k in "abcd"] == ["released", "released", "memory", "processing"]
    assert sim.s.who_has() == {"c": [1]}


def test_lost_only_copy_of_a_needed_key_is_recomputed_through_released_ancestors():
    sim = RSim()
    _chain_on_rank_1(sim)
    out = sim.lose(1)
    assert out[0] == Steal(2, "d")  # d would fetch c from the dead rank: dropped, it waits again
    assert computes(out) == [(2, "a")]
    # c was lost; a and b, released ancestors, are recomputed for it; d, elsewhere, is put back
    assert cost(out, 1) == recovered(1, requeued="d", recomputed="abc")
    assert [sim.state(k) for k in "abcd"] == ["processing", "waiting", "waiting", "waiting"]
    assert sim.s.task("a").killed_on == sim.s.task("d").killed_on == ()
    assert computes(sim.done("a", 2)) == [(2, "b")]
    assert computes(sim.done("b", 2)) == [(2, "c")]
    assert computes(sim.done("c", 2)) == [(2, "d")]
    assert sim.done("d", 2) == [Memory("d"), Free(2, ["c"])]
    assert sim(StealReply, "d", 2, False) == []  # the drop's answer is ignored


def test_lost_key_needed_by_a_waiting_task_is_recomputed():
    sim = RSim()
    sim.submit(T("a"), T("slow", workers=frozenset({3})), T("b", ("a", "slow")))
    sim(Release, ("a",))
    sim.done("a", 1)
    assert sim.state("b") == "waiting" and sim.s.task("b").waiting_on == {"slow"}
    out = sim.lose(1)
    assert computes(out) == [(2, "a")]
    assert sim.s.task("b").waiting_on == {"a", "slow"}
    assert cost(out, 1) == recovered(1, recomputed="a")  # b waits again, it did not move
    sim.done("a", 2)
    assert computes(sim.done("slow", 3)) in ([(2, "b")], [(3, "b")])


def test_lost_diamond_recomputes_the_shared_ancestor_once():
    sim = RSim()
    sim.submit(
        T("a"), T("b", ("a",), workers=frozenset({1}), allow_other_workers=True),
        T("c", ("a",), workers=frozenset({2})), T("d", ("b", "c")),
    )
    sim(Release, ("a", "b", "c"))
    sim.done("a", 1)
    assert sim.s.processing_on(1) == ["b"] and sim.s.processing_on(2) == ["c"]
    sim.done("b", 1)
    out = sim.lose(1)  # a and b were only there; c (on rank 2) would fetch a from it
    assert Steal(2, "c") in out
    assert cost(out, 1) == recovered(1, requeued="c", recomputed="ab")
    assert [k for _, k in computes(out)] == ["a"]
    assert [sim.state(k) for k in "abcd"] == ["processing", "waiting", "waiting", "waiting"]
    rank = sim.s.task("a").processing_on
    out = sim.done("a", rank)
    assert sorted(k for _, k in computes(out)) == ["b", "c"]
    for key in ("b", "c"):
        sim.done(key, sim.s.task(key).processing_on)
    assert sim.state("d") == "processing"
    assert sim.done("d", sim.s.task("d").processing_on)[0] == Memory("d")
    assert [e[1] for e in sim.s.log if e[2] == "ready" and e[3] == "processing"].count("a") == 2


def test_lost_copy_of_a_key_nobody_needs_any_more_is_not_recomputed():
    sim = RSim()
    _chain_on_rank_1(sim)
    sim.done("d", 2, fetched=("c",))  # c is now on 1 and 2
    assert sim(Release, ("d",))  # nobody needs the chain: all forgotten, frees out
    assert list(sim.s.tasks()) == []
    sim.submit(T("x"))
    sim(Release, ("x",))  # x computed, then nobody wanted it
    assert sim.done("x", 1) == [Free(1, ["x"])]
    assert sim.lose(1) == [Recovered(1)]
    assert list(sim.s.tasks()) == []


def test_lost_key_released_in_the_same_batch_is_not_recomputed():
    sim = RSim()
    sim.submit(T("a"), T("b", ("a",)))
    sim(Release, ("a",))
    sim.done("a", 1)
    sim.done("b", 1)
    out = sim.batch(Release(sim.t + 1, ("b",)), RankLost(sim.t + 2, 1))
    assert out == [Recovered(1)]  # b's free to the dead rank dropped, nothing recomputed
    assert list(sim.s.tasks()) == []


def test_lost_wanted_key_is_recomputed_without_dependents():
    sim = RSim()
    sim.submit(T("a"), T("b", ("a",)))
    sim(Release, ("a",))
    sim.done("a", 1)
    sim.done("b", 1)
    out = sim.lose(1)
    assert computes(out) == [(2, "a")] and sim.state("b") == "waiting"
    assert cost(out, 1) == recovered(1, recomputed="ab")
    sim.done("a", 2)
    assert sim.done("b", 2) == [Memory("b"), Free(2, ["a"])]


# ---------------------------------------------------------------- scattered data


def test_lost_scattered_data_errs_dependents_with_worker_lost_naming_key_and_rank():
    sim = RSim()
    sim(Scatter, "x", (1,), 10)
    sim.submit(T("y", ("x",)), T("z", ("y",)), T("other"))
    out = sim.lose(1)
    errors = erred(out)
    assert sorted(errors) == ["x", "y", "z"]
    assert errors["x"] is errors["y"] is errors["z"] and type(errors["x"]) is WorkerLost
    assert cost(out, 1) == recovered(1, {"y": 1}, erred="xyz")  # y, running there, blamed; other is elsewhere
    assert "'x'" in str(errors["x"]) and "rank 1" in str(errors["x"]) and "scattered" in str(errors["x"])
    assert sim.state("other") == "processing"


def test_lost_key_whose_lineage_reaches_forgotten_scattered_data_errs_with_worker_lost():
    sim = RSim()
    sim(Scatter, "x", (1,), 10)
    sim.submit(T("y", ("x",)), T("z", ("y",), workers=frozenset({2})))
    sim(Release, ("x", "y"))
    sim.done("y", 1)
    assert sim.state("x") is None and sim.s.processing_on(2) == ["z"]
    out = sim.lose(1)
    errors = erred(out)
    assert sorted(errors) == ["z"] and type(errors["z"]) is WorkerLost
    assert cost(out, 1) == recovered(1, erred="yz")  # y, lost, erred unwanted; z, put back, with it
    message = str(errors["z"])
    assert "'y'" in message and "rank 1" in message and "'x'" in message
    assert sim.state("z") == "erred" and sim.state("y") is None  # y erred, then nobody needed it


# ---------------------------------------------------------------- the last worker, steals, late messages


def test_last_worker_lost_errs_everything_pending_with_worker_lost():
    sim = RSim({1: "a", 2: "a"})
    sim(Scatter, "s", (1, 2), 10)
    sim.submit(T("a"), T("b", ("a",)), T("c", ("s",)), T("d"))
    sim.done("a", 1)
    sim.lose(2)
    out = sim.lose(1)
    errors = erred(out)
    assert sorted(errors) == ["a", "b", "c", "d", "s"]
    assert all(isinstance(e, WorkerLost) for e in errors.values())
    assert all(sim.state(k) == "erred" for k in "abcds")
    assert sim.s.workers == {} and sim.s.unfinished_wanted() == []
    assert sim.submit(T("late"))[0].key == "late" and sim.state("late") == "erred"


def test_steal_from_the_lost_rank_in_flight():
    sim = RSim({1: "a", 2: "a", 3: "a"})
    sim(Scatter, "x", (1,), 1000)
    sim.submit(T("b2", workers=frozenset({2})), T("b3", workers=frozenset({3})))
    sim.submit(*(T(f"t{i}", ("x",)) for i in range(4)))
    out = sim.done("b2", 2)
    stolen = [i.key for i in out if type(i) is Steal]
    assert stolen and all(i.rank == 1 for i in out if type(i) is Steal)
    sim(Scatter, "x", (3,), 1000)  # a replica: the queue can be placed again
    out = sim.lose(1)  # the victim is gone: its queue is placed again, the steals end
    assert all(victim != 1 for victim, _ in sim.s.worker_table.steals().values())
    assert sorted(k for _, k in computes(out)) == ["t0", "t1", "t2", "t3"]
    for key in stolen:
        assert sim(StealReply, key, 1, True) == []  # a late answer from the dead victim


def test_steal_to_the_lost_rank_in_flight():
    sim = RSim({1: "a", 2: "a", 3: "a"})
    sim(Scatter, "x", (1,), 1000)
    sim.submit(T("b2", workers=frozenset({2})), T("b3", workers=frozenset({3})))
    sim.submit(*(T(f"t{i}", ("x",)) for i in range(4)))
    out = sim.done("b2", 2)
    stolen = [i.key for i in out if type(i) is Steal]
    assert stolen
    sim.lose(2)  # the thief is gone
    assert all(thief is None for _, thief in sim.s.worker_table.steals().values())
    out = sim(StealReply, stolen[0], 1, True)
    assert computes(out) and all(rank != 2 for rank, _ in computes(out))


def test_late_messages_from_the_lost_rank_are_ignored():
    sim = RSim()
    sim.submit(T("a"), T("b"), T("c"), T("d"))
    sim(Release, ("b",))
    sim.lose(1)
    before = sim.snapshot()
    assert sim.done("a", 1) == []
    assert sim(Failed, "d", 1, "late error") == []
    assert sim(StealReply, "d", 1, True) == []
    assert sim(StealReply, "a", 1, False) == []
    assert sim.snapshot() == before
    assert sim.s.who_has() == {}


def test_a_batch_sends_nothing_to_a_rank_it_loses():
    sim = RSim()
    sim(Scatter, "x", (1, 3), 10)
    sim.submit(T("y"))
    sim(Release, ("y",))  # y runs on 1 and is released there
    t = sim.t
    out = sim.batch(
        Submit(t + 1, (T("p", workers=frozenset({1})), T("q", ("x",), workers=frozenset({2})))),
        Finished(t + 2, "y", 1, 10, 1.0),  # its free is held for the batch's end
        RankLost(t + 3, 1),
    )
    assert Compute(2, "q", {"x": [3]}) in out  # rank 1 is no longer named as a holder
    assert erred(out).keys() == {"p"} and isinstance(erred(out)["p"], NoValidWorker)
    assert not [i for i in out if type(i) in (Free, Steal) and i.rank == 1]


def test_cancel_then_loss_does_not_count_the_cancelled_task():
    sim = RSim()
    sim.submit(T("a"), T("b"), T("c"), T("d"))
    sim(Cancel, ("a",))
    out = sim.lose(1)
    assert [k for _, k in computes(out)] == ["d"]
    assert sim.killed_on("d") == () and sim.state("a") == "cancelled"
    assert not [i for i in out if type(i) is Cancelled]


# ---------------------------------------------------------------- the Recovered record


def test_a_loss_of_thousands_of_keys_names_the_first_of_each_and_counts_them_all():
    sim = RSim({1: "a", 2: "a"})
    n = RECOVERED_KEYS_MAX + 500
    keys = [f"t{i:05d}" for i in range(n)]
    sim.submit(*(T(k, workers=frozenset({1}), allow_other_workers=True) for k in keys))
    out = sim.lose(1)
    c = cost(out, 1)
    assert (c.n_requeued, c.requeued) == (n, tuple(keys[:RECOVERED_KEYS_MAX]))
    assert (c.running, c.deaths) == ((keys[0],), (1,)) and c.n_recomputed == c.n_erred == 0
    assert all(sim.state(k) == "processing" and sim.s.task(k).processing_on == 2 for k in keys)


def test_only_the_loss_notes_transitions():
    sim = RSim()
    sim.submit(T("a"), T("b", ("a",)))
    sim.lose(1)
    assert "_transition" not in vars(sim.s)  # the method again, for every later event
    sim.done("a", 2)
    assert sim.state("b") == "processing"


def test_a_batch_reports_each_loss_with_its_own_cost():
    sim = RSim(FOUR)
    sim.submit(T("a"), T("b"), T("c"), T("d"))
    t = sim.t
    out = sim.batch(RankLost(t + 1, 1), RankLost(t + 2, 2), RankLost(t + 3, 2))
    first, second = [i for i in out if type(i) is Recovered]
    assert first == recovered(1, {"a": 1}, requeued="a")
    assert second == recovered(2, {"b": 1}, requeued="ab")  # a had gone to rank 2, behind b
