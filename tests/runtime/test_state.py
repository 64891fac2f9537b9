"""Table-driven tests of the scheduler state machine; validate() runs after every event."""

from __future__ import annotations

import pytest

from hpcdist.errors import DependencyMissing, InvalidTransition, NoValidWorker, WorkerLost
from hpcdist.runtime.scheduling.vocabulary import ALLOWED_TRANSITIONS, Cancel, Failed, Finished, RankLost, Release, Scatter, StealReply, Submit, TaskSpec
from hpcdist.runtime.scheduling.state import SchedulerState
from hpcdist.runtime.scheduling.vocabulary import PENDING, Cancelled, Compute, Erred, Free, Memory, Recovered, Steal

# ranks 1 and 2 share host "a", rank 3 is alone on host "b"
HOSTS = {1: "a", 2: "a", 3: "b"}
T = TaskSpec
REPORTED_STATE = {Memory: "memory", Erred: "erred", Cancelled: "cancelled"}


class Sim:
    """A SchedulerState whose every event is followed by validate()."""

    def __init__(self, workers=None):
        self.s = SchedulerState(dict(HOSTS if workers is None else workers))
        self.t = 0.0

    def __call__(self, event_type, *args, **kwargs):
        self.t += 1.0
        out = self.s.handle(event_type(self.t, *args, **kwargs))
        self.s.validate()
        return out

    def submit(self, *specs):
        return self(Submit, tuple(specs))

    def done(self, key, rank, nbytes=10, duration=1.0, fetched=()):
        return self(Finished, key, rank, nbytes, duration, tuple(fetched))

    def state(self, key):
        return self.s.state_of(key)


@pytest.fixture
def sim():
    sim = Sim()
    yield sim
    sim.s.validate()


def computes(out):
    return [(i.rank, i.key) for i in out if type(i) is Compute]


def kinds(out, kind):
    return [i for i in out if type(i) is kind]


# ---------------------------------------------------------------- basics and the log


def test_single_task_runs_and_is_reported(sim):
    assert sim.submit(T("a", fn_name="f")) == [Compute(1, "a", {})]
    assert sim.state("a") == "processing" and sim.s.processing_on(1) == ["a"]
    assert sim.done("a", 1, nbytes=123) == [Memory("a")]
    assert sim.state("a") == "memory"
    assert sim.s.who_has() == {"a": [1]}
    assert sim.s.has_what() == {1: ["a"], 2: [], 3: []}


def test_log_records_every_transition_with_the_event_time(sim):
    sim.submit(T("a"))
    sim.done("a", 1)
    assert list(sim.s.log) == [
        (1.0, "a", "forgotten", "released", ""),
        (1.0, "a", "released", "ready", ""),
        (1.0, "a", "ready", "processing", ""),
        (2.0, "a", "processing", "memory", ""),
    ]
    assert all((a, b) in ALLOWED_TRANSITIONS for _, _, a, b, _ in sim.s.log)


def test_log_names_the_stimulus_of_every_transition(sim):
    sim.s.handle(Submit(1.0, (T("a"), T("b", ("a",))), stimulus_id=("submit", 0, 7)))
    sim.s.handle(Finished(2.0, "a", 1, 10, 1.0, stimulus_id=("done", 1, 8)))
    sim.s.validate()
    assert sim.s.story("b") == [
        (1.0, "forgotten", "released", "submit-0-7"),
        (1.0, "released", "waiting", "submit-0-7"),
        (2.0, "waiting", "ready", "done-1-8"),
        (2.0, "ready", "processing", "done-1-8"),
    ]
    assert sim.s.story("a")[-1] == (2.0, "processing", "memory", "done-1-8")
    assert sim.s.history("b")[-1] == (2.0, "ready", "processing")
    ts = sim.s._tasks["b"]
    with pytest.raises(InvalidTransition, match="caused by unnamed"):  # outside handle(): no event
        sim.s._transition(ts, "waiting")


def test_independent_tasks_spread_by_occupancy(sim):
    out = sim.submit(*(T(k, fn_name="f") for k in "abcd"))
    assert computes(out) == [(1, "a"), (2, "b"), (3, "c"), (1, "d")]
    assert sim.s.processing_on(1) == ["a", "d"]
    assert sim.s.occupancy(1) == pytest.approx(1.0)  # two unknown tasks at 0.5 s


def test_deps_may_come_later_in_the_same_submit(sim):
    out = sim.submit(T("b", ("a",)), T("a"))
    assert computes(out) == [(1, "a")]
    assert sim.state("b") == "waiting"
    out = sim.done("a", 1)
    assert out == [Memory("a"), Compute(1, "b", {"a": [1]})]


def test_diamond_graph(sim):
    sim.submit(T("a"), T("b", ("a",)), T("c", ("a",)), T("d", ("b", "c")))
    assert [sim.state(k) for k in "abcd"] == ["processing", "waiting", "waiting", "waiting"]
    out = sim.done("a", 1, nbytes=10)
    # both go to the holder of a (fewest bytes to move); idle rank 2 then asks for the queued one
    assert computes(out) == [(1, "b"), (1, "c")]
    assert kinds(out, Steal) == [Steal(1, "c")]
    sim(StealReply, "c", 1, False)
    sim.done("b", 1)
    assert sim.state("d") == "waiting"
    out = sim.done("c", 1)
    assert out[-1] == Compute(1, "d", {"b": [1], "c": [1]})
    sim.done("d", 1)
    assert [sim.state(k) for k in "abcd"] == ["memory"] * 4


def test_compute_lists_holders_self_then_same_host_first(sim):
    sim(Scatter, "x", (3, 2), 10)
    sim(Scatter, "y", (3,), 10_000)
    out = sim.submit(T("z", ("x", "y"), workers=frozenset({1})))
    assert out == [Compute(1, "z", {"x": [2, 3], "y": [3]})]
    sim.submit(T("w", ("x",), workers=frozenset({2})))
    assert sim.s.processing_on(2) == ["w"]


def test_fetched_deps_become_replicas(sim):
    sim(Scatter, "x", (3,), 10)
    sim.submit(T("z", ("x",), workers=frozenset({1})))
    sim.done("z", 1, fetched=("x",))
    assert sim.s.who_has(["x", "z"]) == {"x": [1, 3], "z": [1]}


def test_copies_reported_with_a_failure_are_replicas_not_freed(sim):
    # z fails on 1 while w, queued on 1 too, waits to run on the copy of x that 1 fetched: the
    # report of z's failure carries that copy, which must be kept (freeing it lost w's input)
    sim(Scatter, "x", (3,), 10)
    sim.submit(T("z", workers=frozenset({1})), T("w", ("x",), workers=frozenset({1})))
    out = sim(Failed, "z", 1, "boom", 0.0, ("x",))
    assert kinds(out, Free) == []
    assert sim.s.who_has(["x"]) == {"x": [1, 3]}


def test_a_failure_frees_reported_copies_of_keys_no_longer_in_memory(sim):
    sim(Scatter, "x", (3,), 10)
    sim.submit(T("z", workers=frozenset({1})), T("w", ("x",), workers=frozenset({1})))
    sim.done("w", 1, fetched=("x",))
    sim(Release, ("x",))  # nobody wants x: its copies go
    out = sim(Failed, "z", 1, "boom", 0.0, ("x",))  # a late report of the copy 1 made
    assert Free(1, ["x"]) in out


def test_unknown_event_type_is_rejected(sim):
    with pytest.raises(TypeError, match="unknown event type"):
        sim.s.handle(object())


# ---------------------------------------------------------------- dedup, resubmission


def test_pure_key_dedup(sim):
    assert computes(sim.submit(T("a"))) == [(1, "a")]
    assert sim.submit(T("a")) == []  # already processing: not created again
    sim.done("a", 1)
    assert sim.submit(T("a")) == [Memory("a")]
    assert [b for _, k, _, b, _ in sim.s.log if k == "a"].count("processing") == 1


def test_erred_key_is_reported_again_not_rerun(sim):
    sim.submit(T("a"))
    sim(Failed, "a", 1, "boom")
    assert sim.submit(T("a")) == [Erred("a", "boom")]


def test_forgotten_key_is_computed_again(sim):
    sim.submit(T("a"))
    sim.done("a", 1)
    assert sim(Release, ("a",)) == [Free(1, ["a"])]
    assert sim.state("a") is None
    assert computes(sim.submit(T("a"))) == [(1, "a")]
    assert sim.s.pop_forgotten() == ["a"] and sim.s.pop_forgotten() == []


def test_unknown_dependency_errs_at_once(sim):
    out = sim.submit(T("b", ("nope",)))
    (ins,) = out
    assert (type(ins), ins.key) == (Erred, "b") and isinstance(ins.error, DependencyMissing)
    assert "'b' depends on 'nope'" in str(ins.error)


def test_dependency_cycle_errs(sim):
    out = sim.submit(T("a", ("b",)), T("b", ("a",)), T("c", ("a",)))
    assert {i.key for i in kinds(out, Erred)} == {"a", "b", "c"}
    assert "cycle" in str(sim.s.error_of("a"))


# ---------------------------------------------------------------- errors and retries


def test_error_reaches_dependents_not_independent_tasks(sim):
    sim.submit(T("a"), T("b", ("a",)), T("c", ("b",)), T("x"))
    err = ValueError("boom")
    out = sim(Failed, "a", 1, err)
    assert out == [Erred("a", err), Erred("b", err), Erred("c", err)]
    assert sim.state("x") == "processing"
    assert sim.done("x", 2) == [Memory("x")]
    assert sim.s.error_of("c") is err


def test_submitting_onto_an_erred_dep_errs_with_its_error(sim):
    sim.submit(T("a"))
    sim(Failed, "a", 1, "boom")
    assert sim.submit(T("b", ("a",))) == [Erred("b", "boom")]


def test_retries_then_success_prefers_another_free_worker(sim):
    sim.submit(T("a", retries=2), T("busy"))  # a on 1, busy on 2
    out = sim(Failed, "a", 1, "e1")
    assert out == [Compute(3, "a", {})]  # rank 3 is free and has not failed it
    out = sim(Failed, "a", 3, "e2")
    assert out == [Compute(1, "a", {})]  # nobody free that has not failed: normal choice
    assert sim.done("a", 1) == [Memory("a")]
    states = [b for _, k, _, b, _ in sim.s.log if k == "a"]
    assert states.count("ready") == 3 and states[-1] == "memory"


def test_retries_exhausted(sim):
    sim.submit(T("a", retries=1))
    sim(Failed, "a", 1, "e1")
    assert sim(Failed, "a", 2, "e2") == [Erred("a", "e2")]


def test_stale_failure_from_another_rank_is_ignored(sim):
    sim.submit(T("a"))
    assert sim(Failed, "a", 3, "late") == []
    assert sim.state("a") == "processing"


# ---------------------------------------------------------------- release and forgetting


def test_release_while_dependents_pending_waits_for_them(sim):
    sim.submit(T("a"), T("b", ("a",)))
    sim.done("a", 1)
    assert sim(Release, ("a",)) == []
    assert sim.state("a") == "memory"
    out = sim.done("b", 1)
    assert out == [Memory("b"), Free(1, ["a"])]
    assert sim.state("a") == "released"  # data gone, lineage kept for b
    sim(Release, ("b",))
    assert sim.state("a") is None and sim.state("b") is None


def test_frees_are_batched_per_rank(sim):
    sim.submit(*(T(k) for k in "abcd"))
    for k, r in zip("abcd", (1, 2, 3, 1)):
        sim.done(k, r)
    out = sim(Release, tuple("dcba"))
    assert out == [Free(1, ["a", "d"]), Free(2, ["b"]), Free(3, ["c"])]


def test_release_of_processing_task_forgets_it_and_frees_a_late_result(sim):
    sim.submit(T("a"), T("b"))
    out = sim(Release, ("b",))
    assert out == [Steal(2, "b")]  # the worker drops it if it has not started
    assert sim.state("b") is None
    assert sim(StealReply, "b", 2, True) == []
    assert sim.done("b", 2) == [Free(2, ["b"])]


def test_release_of_waiting_task_forgets_its_unwanted_inputs(sim):
    sim.submit(T("a"), T("b", ("a",)))
    sim(Release, ("a",))
    assert sim.state("a") == "processing"
    out = sim(Release, ("b",))
    assert out == [Steal(1, "a")]
    assert sim.state("a") is None and sim.state("b") is None


def test_memory_of_released_key_is_not_announced(sim):
    sim.submit(T("a"), T("b", ("a",)))
    sim(Release, ("a",))
    out = sim.done("a", 1)
    assert Memory("a") not in out and computes(out) == [(1, "b")]


def test_finished_for_unknown_key_is_freed(sim):
    assert sim.done("ghost", 3) == [Free(3, ["ghost"])]


# ---------------------------------------------------------------- cancel


def test_cancel_waiting_task(sim):
    sim.submit(T("a"), T("b", ("a",)), T("c", ("b",)))
    out = sim(Cancel, ("b",))
    assert sorted(out) == [Cancelled("b"), Cancelled("c")]
    assert sim.state("a") == "processing"
    assert sim.done("a", 1) == [Memory("a")]
    sim(Release, ("b", "c"))
    assert sim.state("b") is None


def test_cancel_processing_task_and_late_result(sim):
    sim.submit(T("a"), T("b", ("a",)))
    out = sim(Cancel, ("a",))
    assert out == [Steal(1, "a"), Cancelled("a"), Cancelled("b")]
    assert sim.s.processing_on(1) == []
    assert sim.done("a", 1) == [Free(1, ["a"])]
    assert sim.state("a") == "cancelled"


def test_cancel_of_finished_key_changes_nothing(sim):
    sim.submit(T("a"))
    sim.done("a", 1)
    assert sim(Cancel, ("a",)) == []
    assert sim.state("a") == "memory"


def test_cancelled_key_can_be_submitted_again(sim):
    sim.submit(T("a"))
    sim(Cancel, ("a",))
    out = sim.submit(T("a"))
    assert computes(out) == [(2, "a")]  # rank 1 may still be running the cancelled run
    assert sim.state("a") == "processing"


def test_new_dependent_of_a_cancelled_key_is_cancelled(sim):
    sim.submit(T("c"))
    assert sim(Cancel, ("c",)) == [Steal(1, "c"), Cancelled("c")]
    assert sim.submit(T("d", ("c",))) == [Cancelled("d")]


# ---------------------------------------------------------------- restrictions and scatter


def test_restrictions(sim):
    out = sim.submit(T("a", workers=frozenset({3})), T("b", workers=frozenset({3})))
    assert computes(out) == [(3, "a"), (3, "b")]
    out = sim.submit(T("c", workers=frozenset({9}), allow_other_workers=True))
    assert computes(out) == [(1, "c")]


def test_impossible_restriction_errs_clearly(sim):
    (ins,) = sim.submit(T("a", workers=frozenset({7, 9})))
    assert (type(ins), ins.key) == (Erred, "a") and isinstance(ins.error, NoValidWorker)
    assert "[7, 9]" in str(ins.error) and "[1, 2, 3]" in str(ins.error)


def test_scatter_then_dependent_runs_where_the_data_is(sim):
    assert sim(Scatter, "x", (3,), 5_000_000) == [Memory("x")]
    assert computes(sim.submit(T("y", ("x",)))) == [(3, "y")]
    assert sim(Scatter, "x", (1,), 5_000_000) == [Memory("x")]
    assert sim.s.who_has(["x"]) == {"x": [1, 3]}


# ---------------------------------------------------------------- durations


def test_durations_running_average_drives_occupancy(sim):
    assert sim.s.expected_duration("f") == 0.5
    sim.submit(T("a", fn_name="f"))
    sim.done("a", 1, duration=1.0)
    sim.submit(T("b", fn_name="f"))
    sim.done("b", 1, duration=3.0)
    assert sim.s.durations == {"f": 2.0}
    sim.submit(T("c", fn_name="f"), T("d", fn_name="g"))
    assert sim.s.occupancy(1) == 2.0 and sim.s.occupancy(2) == 0.5


# ---------------------------------------------------------------- stealing


def _locality_world(nbytes):
    sim = Sim({1: "a", 2: "b", 3: "c"})
    sim(Scatter, "x", (1,), nbytes)
    sim.submit(T("busy2", workers=frozenset({2})), T("busy3", workers=frozenset({3})))
    out = sim.submit(*(T(f"t{i}", ("x",), fn_name="f") for i in range(8)))
    return sim, out


def test_locality_first_then_idle_workers_steal():
    sim, out = _locality_world(1_000_000)
    assert computes(out) == [(1, f"t{i}") for i in range(8)]
    out = sim.done("busy2", 2)
    assert kinds(out, Steal) == [
        Steal(1, "t7"),
        Steal(1, "t6"),
        Steal(1, "t5"),
        Steal(1, "t4"),
    ]
    assert sim.s.occupancy(2) == pytest.approx(2.0)  # steals in flight count
    out = sim.done("busy3", 3)
    assert kinds(out, Steal) == [Steal(1, "t3"), Steal(1, "t2")]
    assert sim(StealReply, "t7", 1, True) == [Compute(2, "t7", {"x": [1]})]
    assert sim(StealReply, "t3", 1, False) == []  # it had started: it stays
    assert sim(StealReply, "t2", 1, True) == [Compute(3, "t2", {"x": [1]})]
    assert sim.s.processing_on(1) == ["t0", "t1", "t3", "t4", "t5", "t6"]
    assert sim.s.processing_on(2) == ["t7"] and sim.s.processing_on(3) == ["t2"]


def test_big_inputs_are_not_stolen():
    sim, _ = _locality_world(20 * 10**9)  # 20 s to move, 4 s of queue
    assert kinds(sim.done("busy2", 2), Steal) == []
    assert sim.s.processing_on(1) == [f"t{i}" for i in range(8)]


def test_idle_workers_at_submit_steal_at_once(sim):
    sim(Scatter, "x", (1,), 1000)
    out = sim.submit(*(T(f"t{i}", ("x",)) for i in range(4)))
    assert computes(out) == [(1, f"t{i}") for i in range(4)]
    assert kinds(out, Steal) == [Steal(1, "t3"), Steal(1, "t2")]


def test_restricted_tasks_are_not_stolen(sim):
    sim.submit(T("a", workers=frozenset({1, 2})), T("b", workers=frozenset({1, 2})))
    sim.submit(T("c", workers=frozenset({1})), T("d", workers=frozenset({1, 3})))
    assert sim.s.processing_on(1) == ["a", "c"] and sim.s.processing_on(3) == ["d"]
    assert kinds(sim.done("b", 2), Steal) == []  # c may only run on rank 1
    assert sim.s.processing_on(1) == ["a", "c"]


def test_steal_reply_race_both_orders():
    sim = Sim({1: "a", 2: "a"})
    sim(Scatter, "x", (1,), 1000)
    sim.submit(T("busy", workers=frozenset({2})))
    sim.submit(T("p", ("x",)), T("q", ("x",)), T("r", ("x",)))
    out = sim.done("busy", 2)
    assert kinds(out, Steal) == [Steal(1, "r")]
    # Finished arrives first, then the (refusing) reply: the result counts, the reply is ignored
    assert sim.done("r", 1) == [Memory("r")]
    assert sim(StealReply, "r", 1, False) == []
    # second round: the accepting reply comes first, then a duplicate result of the old rank
    assert sim.s.processing_on(1) == ["p", "q"]
    sim.submit(T("busy2", workers=frozenset({2})))
    out = sim.done("busy2", 2)
    assert kinds(out, Steal) == [Steal(1, "q")]
    assert sim(StealReply, "q", 1, True) == [Compute(2, "q", {"x": [1]})]
    assert sim.done("q", 2) == [Memory("q")]
    assert sim.done("q", 1) == []  # a raced duplicate is just another replica
    assert sim.s.who_has(["q"]) == {"q": [1, 2]}


def test_result_of_an_earlier_run_is_accepted_and_the_rerun_dropped(sim):
    sim.submit(T("a"))
    assert sim(Release, ("a",)) == [Steal(1, "a")]  # rank 1 is already running it
    sim.submit(T("b"))
    assert computes(sim.submit(T("a"))) == [(2, "a")]
    assert sim.done("a", 1) == [Steal(2, "a"), Memory("a")]
    assert sim.s.who_has(["a"]) == {"a": [1]} and sim.s.processing_on(2) == []


def test_thief_lost_before_reply_places_elsewhere():
    sim = Sim({1: "a", 2: "a", 3: "a"})
    sim(Scatter, "x", (1,), 1000)
    sim.submit(T("b2", workers=frozenset({2})), T("b3", workers=frozenset({3})))
    sim.submit(*(T(f"t{i}", ("x",)) for i in range(4)))
    out = sim.done("b2", 2)
    assert kinds(out, Steal) == [Steal(1, "t3"), Steal(1, "t2")]
    sim(RankLost, 2)
    out = sim(StealReply, "t3", 1, True)
    assert computes(out) == [(1, "t3")]  # locality: back to the holder


# ---------------------------------------------------------------- worker loss


def test_worker_lost_replaces_its_queue(sim):
    sim.submit(T("a"), T("b"), T("c"), T("d"))
    out = sim(RankLost, 1)
    assert computes(out) == [(2, "a"), (3, "d")]
    assert 1 not in sim.s.has_what()
    assert sim.done("a", 1) == []  # a late message from the lost rank is ignored


def test_worker_lost_recomputes_lost_data_through_lineage(sim):
    sim.submit(T("a"), T("b", ("a",)))
    sim(Release, ("a",))
    sim.done("a", 1)
    sim.done("b", 1)
    assert sim.state("a") == "released"
    out = sim(RankLost, 1)
    assert computes(out) == [(2, "a")]
    assert sim.state("b") == "waiting"
    out = sim.done("a", 2)
    assert out == [Compute(2, "b", {"a": [2]})]
    assert sim.done("b", 2)[0] == Memory("b")


def test_worker_lost_keeps_keys_with_replicas(sim):
    sim(Scatter, "x", (1, 3), 10)
    sim.submit(T("y", ("x",), workers=frozenset({2})))
    assert sim(RankLost, 1) == [Recovered(1)]  # it cost nothing
    assert sim.s.who_has(["x"]) == {"x": [3]}


def test_lost_input_of_running_task_restarts_it(sim):
    sim.submit(T("a"), T("b", ("a",), workers=frozenset({2})))
    sim.done("a", 1)
    assert sim.s.processing_on(2) == ["b"]
    out = sim(RankLost, 1)
    # b would fetch a from the dead rank: it is dropped, a is recomputed, b waits for it
    assert out == [Steal(2, "b"), Compute(2, "a", {}), Recovered(1, requeued=("b",), recomputed=("a",), n_requeued=1,
                                                                 n_recomputed=1)]
    assert sim.state("b") == "waiting"
    assert sim.done("a", 2) == [Memory("a"), Compute(2, "b", {"a": [2]})]
    assert sim(StealReply, "b", 2, True) == []  # the drop's reply is ignored


def test_lost_scattered_data_errs_dependents(sim):
    sim(Scatter, "x", (1,), 10)
    sim.submit(T("y", ("x",)), T("other"))
    out = sim(RankLost, 1)
    erred = kinds(out, Erred)
    assert [i.key for i in erred] == ["x", "y"]
    assert isinstance(erred[0].error, WorkerLost) and "scattered" in str(erred[0].error)
    assert sim.state("other") == "processing"


def test_every_worker_lost_errs_pending_tasks():
    sim = Sim({1: "a"})
    sim.submit(T("a"))
    ins, cost = sim(RankLost, 1)
    assert (type(ins), ins.key) == (Erred, "a") and "every worker was lost" in str(ins.error)
    assert cost == Recovered(1, ("a",), (1,), erred=("a",), n_erred=1)


# ---------------------------------------------------------------- the table and validate()


def test_illegal_transition_names_key_and_history(sim):
    sim.submit(T("a"), T("b", ("a",)))
    ts = sim.s._tasks["b"]
    with pytest.raises(InvalidTransition) as info:
        sim.s._transition(ts, "memory")
    message = str(info.value)
    assert "'b'" in message and "waiting -> memory" in message
    assert "t=1 forgotten->released, t=1 released->waiting" in message


@pytest.mark.parametrize(
    "edge",
    [("waiting", "memory"), ("memory", "processing"), ("erred", "memory"), ("forgotten", "memory")],
)
def test_table_rejects(edge):
    assert edge not in ALLOWED_TRANSITIONS


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda s: s.worker_table.holders["a"].add(3), "who_has"),
        (lambda s: s.worker_table[2].processing.update({"a": None}), "processing on ranks"),
        (lambda s: setattr(s._tasks["a"], "wanted", False), "nobody needs it"),
        (lambda s: s._tasks["a"].waiting_on.add("zz"), "waiting_on"),
    ],
)
def test_validate_catches_corruption(corrupt, message):
    sim = Sim()
    sim.submit(T("a"), T("b"))
    if "who_has" in message:
        sim.done("a", 1)
    corrupt(sim.s)
    with pytest.raises(AssertionError, match=message):
        sim.s.validate()


def test_restricted_task_errs_when_its_only_worker_dies(sim):
    sim.submit(T("a", workers=frozenset({3})), T("b", workers=frozenset({3})))
    *out, cost = sim(RankLost, 3)
    assert [(type(i), i.key) for i in out] == [(Erred, "a"), (Erred, "b")]
    assert cost == Recovered(3, ("a",), (1,), erred=("a", "b"), n_erred=2)
    assert isinstance(out[0].error, NoValidWorker)


def test_lineage_is_forgotten_with_its_last_dependent(sim):
    sim.submit(T("a"), T("b", ("a",)), T("c", ("b",)))
    sim(Release, ("a", "b"))
    for k in "abc":
        sim.done(k, 1)
    assert [sim.state(k) for k in "abc"] == ["released", "released", "memory"]
    assert sim(Release, ("c",)) == [Free(1, ["c"])]
    assert sim.s.pop_forgotten() == ["c", "b", "a"]
    assert [sim.state(k) for k in "abc"] == [None, None, None]


def test_scatter_to_dead_ranks_errs(sim):
    (ins,) = sim(Scatter, "x", (8,), 10)
    assert (type(ins), ins.key) == (Erred, "x") and isinstance(ins.error, WorkerLost)


def test_scatter_of_a_key_being_computed_keeps_the_computation(sim):
    sim.submit(T("a"))
    assert sim(Scatter, "a", (2,), 10) == [Free(2, ["a"])]
    assert sim.state("a") == "processing"


class _Worker:
    """A model worker: FIFO queue, answers steals when it receives them, holds data."""

    def __init__(self):
        self.queue, self.data = [], set()


def _simulate(seed, steps=150, nkeys=15):
    """Drive a SchedulerState with model workers and a client at random; return the final state."""
    import random

    rng = random.Random(seed)
    sim = Sim({1: "a", 2: "a", 3: "b", 4: "b"})
    workers = {r: _Worker() for r in sim.s.workers}
    replies, wanted = [], {}
    keys = [f"k{i}" for i in range(nkeys)]

    def spec(i):
        r = random.Random(i)  # pure keys: one key, one spec
        deps = tuple(sorted(r.sample(keys[:i], min(i, r.randint(0, 2)))))
        restrict = frozenset(r.sample([1, 2, 3, 4, 9], 2)) if r.random() < 0.2 else None
        return T(keys[i], deps, "fg"[i % 2], restrict, r.random() < 0.5, r.randint(0, 1))

    def send(event_type, *args):
        for ins in sim(event_type, *args):
            if type(ins) is Compute:
                for dep, holders in ins.deps.items():
                    assert holders and all(dep in workers[h].data for h in holders), ins
                workers[ins.rank].queue.append(ins.key)
            elif type(ins) is Free:
                workers[ins.rank].data.difference_update(ins.keys)
            elif type(ins) is Steal:
                queue = workers[ins.rank].queue
                ok = ins.key in queue[1:]
                if ok:
                    queue.remove(ins.key)
                replies.append((ins.key, ins.rank, ok))
            elif type(ins) is Recovered:  # what it names really happened
                assert ins.rank == args[0] and all(sim.state(k) in PENDING for k in ins.requeued + ins.recomputed)
                assert all(sim.state(k) in ("erred", None) for k in ins.erred), ins
            elif ins.key in wanted:
                wanted[ins.key] = REPORTED_STATE[type(ins)]

    def step(final):
        r = rng.random()
        if not final and r < 0.2:
            specs = [spec(rng.randrange(nkeys)) for _ in range(rng.randint(1, 3))]
            wanted.update({s.key: wanted.get(s.key) for s in specs})
            send(Submit, tuple(specs))
        elif not final and r < 0.3 and wanted:
            key = rng.choice(sorted(wanted))
            del wanted[key]
            send(Release, (key,))
        elif not final and r < 0.34 and wanted:
            send(Cancel, (rng.choice(sorted(wanted)),))
        elif not final and r < 0.36 and len(workers) > 1:
            rank = rng.choice(sorted(workers))
            del workers[rank]
            replies[:] = [x for x in replies if x[1] != rank]
            send(RankLost, rank)
        elif replies and (final or r < 0.6):
            send(StealReply, *replies.pop(rng.randrange(len(replies))))
        elif any(w.queue for w in workers.values()):
            rank = rng.choice(sorted(r for r, w in workers.items() if w.queue))
            key = workers[rank].queue.pop(0)
            if rng.random() < 0.15:
                send(Failed, key, rank, f"error of {key}")
            else:
                workers[rank].data.add(key)
                send(Finished, key, rank, rng.randint(1, 10**7), rng.random())
        else:
            return False
        return True

    for _ in range(steps):
        step(final=False)
    while step(final=True):
        pass
    return sim, workers, wanted


@pytest.mark.parametrize("seed", range(25))
def test_random_runs_settle_with_every_wanted_key_reported(seed):
    sim, workers, wanted = _simulate(seed)
    for key, told in wanted.items():
        state = sim.state(key)
        assert state in ("memory", "erred", "cancelled"), (key, sim.s.history(key))
        assert told == state, (key, told, state)
    for rank, worker in workers.items():
        assert worker.queue == [] and sim.s.processing_on(rank) == []
        assert set(sim.s.has_what()[rank]) == worker.data
