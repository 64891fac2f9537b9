"""A worker running a cancelled task stays busy until it reports the end: placement and stealing avoid it."""

from __future__ import annotations

import pytest

from hpcdist.runtime.scheduling.vocabulary import Cancel, Failed, Finished, RankLost, StealReply, TaskSpec
from hpcdist.runtime.scheduling.vocabulary import Cancelled, Compute, Steal
from test_state import Sim

T = TaskSpec
TWO = {1: "a", 2: "a"}


def computes(out):
    return [(i.rank, i.key) for i in out if type(i) is Compute]


def steals(out):
    return [(i.rank, i.key) for i in out if type(i) is Steal]


@pytest.fixture
def sim():
    s = Sim(TWO)
    yield s
    s.s.validate()


def _cancel_running_on_1(sim):
    assert computes(sim.submit(T("long"))) == [(1, "long")]
    out = sim(Cancel, ("long",))
    assert steals(out) == [(1, "long")] and Cancelled("long") in out


def test_next_task_avoids_the_worker_still_running_a_cancelled_task(sim):
    _cancel_running_on_1(sim)
    assert sim.s.occupancy(1) > 0
    assert computes(sim.submit(T("next"))) == [(2, "next")]


def test_restricted_task_still_goes_there(sim):
    _cancel_running_on_1(sim)
    assert computes(sim.submit(T("pinned", workers=frozenset({1})))) == [(1, "pinned")]


# how the worker tells the scheduler the cancelled task is over
ENDS = {
    "finished": lambda sim: sim(Finished, "long", 1, 10, 30.0, ()),
    "failed": lambda sim: sim(Failed, "long", 1, ("err",), 30.0),
    "dropped-unstarted": lambda sim: sim(StealReply, "long", 1, True),
}


@pytest.mark.parametrize("end", list(ENDS))
def test_worker_is_free_once_it_reports_the_end(sim, end):
    _cancel_running_on_1(sim)
    assert computes(sim.submit(T("x"))) == [(2, "x")]
    ENDS[end](sim)
    assert sim.s.occupancy(1) == 0
    assert computes(sim.submit(T("y"))) == [(1, "y")]  # free again: the least occupied


def test_a_refused_steal_means_it_still_runs(sim):
    _cancel_running_on_1(sim)
    sim(StealReply, "long", 1, False)
    assert computes(sim.submit(T("x"))) == [(2, "x")]


def test_work_queued_behind_a_cancelled_task_is_stolen_by_an_idle_worker(sim):
    sim.s.durations["slow"] = 100.0  # rank 2's task looks long: the next task goes behind the cancelled one
    assert computes(sim.submit(T("long"), T("other", fn_name="slow"))) == [(1, "long"), (2, "other")]
    sim(Cancel, ("long",))
    assert computes(sim.submit(T("queued"))) == [(1, "queued")]
    out = sim.done("other", 2)  # rank 2 idle, rank 1 still running the cancelled task: take the queued one
    assert steals(out) == [(1, "queued")], out
    assert computes(sim(StealReply, "queued", 1, True)) == [(2, "queued")]


def test_lost_worker_forgets_its_cancelled_tasks(sim):
    _cancel_running_on_1(sim)
    sim(RankLost, 1)
    assert computes(sim.submit(T("x"))) == [(2, "x")]


def test_cancel_of_a_queued_task_dropped_by_the_worker(sim):
    sim.submit(T("a"), T("b"), T("c"))  # a on 1, b on 2, c queued behind one of them
    rank = next(r for r in (1, 2) if "c" in sim.s.processing_on(r))
    before = sim.s.occupancy(rank)
    sim(Cancel, ("c",))
    assert sim.s.occupancy(rank) == before  # it may have started: still counted
    sim(StealReply, "c", rank, True)  # the worker had not started it
    assert sim.s.occupancy(rank) < before
