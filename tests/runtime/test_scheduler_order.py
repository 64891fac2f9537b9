"""What rank 0 sends a worker about one task arrives in the order the state decided it.

The scheduler batches a round's COMPUTEs per rank and sends them at the end of the round, while a
STEAL goes at once. A task placed and then taken back within one round (cancelled; or, after a
worker's death, a dependent that would fetch a lost copy) had its STEAL overtake its COMPUTE: the
worker answered "not here", then ran the task that was no longer its own. Seen in the soak of a
worker's death: the stale run's failure report then re-placed the task a second time.
"""

from __future__ import annotations

from rank0_fake import Rank0Transport

from hpcdist.runtime import messages as m
from hpcdist.runtime.scheduler import Scheduler
from hpcdist.runtime.scheduling import state as st
from hpcdist.runtime.scheduling.vocabulary import TaskSpec


def _scheduler() -> tuple[Scheduler, Rank0Transport]:
    transport = Rank0Transport()
    sched = Scheduler(transport, notify=lambda ins: None)
    sched.state = st.SchedulerState({1: "h", 2: "h"})
    return sched, transport


def test_a_task_taken_back_in_the_round_it_was_placed_gets_its_compute_before_its_steal():
    sched, transport = _scheduler()
    sched._dispatch(0, (m.SUBMIT, [(TaskSpec("k", fn_name="f", workers=frozenset({2})), "fn", b"fn", b"d", [])]), [])
    sched._dispatch(0, (m.CANCEL, ["k"]), [])  # same round: nothing flushed in between
    sched._flush()
    about_k = [(dest, h[0]) for dest, h in transport.sent if h[0] in (m.COMPUTE, m.STEAL)]
    assert about_k == [(2, m.COMPUTE), (2, m.STEAL)]


def test_the_computes_of_other_ranks_still_wait_for_the_end_of_the_round():
    sched, transport = _scheduler()
    specs = [(TaskSpec("k", fn_name="f", workers=frozenset({2})), "fn", b"fn", b"d", []),
             (TaskSpec("j", fn_name="f", workers=frozenset({1})), "fn", b"fn", b"d", [])]
    sched._dispatch(0, (m.SUBMIT, specs), [])
    sched._dispatch(0, (m.CANCEL, ["k"]), [])
    assert [(dest, h[0]) for dest, h in transport.sent] == [(2, m.COMPUTE), (2, m.STEAL)]
    sched._flush()
    assert [(dest, h[0]) for dest, h in transport.sent][2:] == [(1, m.COMPUTE)]
    assert [e[0] for e in transport.sent[2][1][1]] == ["j"]
