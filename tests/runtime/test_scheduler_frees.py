"""The scheduler batches frees: they wait for a full batch or a short delay, or go with a COMPUTE."""

from __future__ import annotations

import time

from rank0_fake import Rank0Transport

from hpcdist.runtime import messages as m
from hpcdist.runtime.frees import FREE_BATCH, FREE_DELAY, Frees
from hpcdist.runtime.scheduler import Scheduler
from hpcdist.runtime.scheduling import state as st
from hpcdist.runtime.scheduling.vocabulary import TaskSpec


def _fast(attempt):
    """Run ``attempt()`` (returns its elapsed seconds) until it took less than the free delay:
    a loaded machine may pause a test for longer than that."""
    for _ in range(20):
        if attempt() < FREE_DELAY:
            return
    raise AssertionError(f"never ran within {FREE_DELAY} s")


def test_a_few_frees_wait_for_the_delay():
    def attempt() -> float:
        sent: list = []
        frees = Frees(lambda rank, header: sent.append((rank, header)))
        t0 = time.monotonic()
        frees.add(1, ["a"])
        frees.send_due()
        elapsed = time.monotonic() - t0
        if elapsed < FREE_DELAY:
            assert sent == [] and len(frees) == 1
        time.sleep(FREE_DELAY * 2)
        frees.send_due()
        assert sent == [(1, (m.FREE, ["a"]))] and len(frees) == 0
        return elapsed

    _fast(attempt)


def test_a_full_batch_goes_at_once():
    sent: list = []
    frees = Frees(lambda rank, header: sent.append((rank, header)))
    frees.add(1, ["a"])
    frees.add(2, [f"k{i}" for i in range(FREE_BATCH - 1)])
    frees.send_due()
    assert sent == [(1, (m.FREE, ["a"])), (2, (m.FREE, [f"k{i}" for i in range(FREE_BATCH - 1)]))]
    assert len(frees) == 0


def test_a_compute_carries_the_pending_frees_of_its_rank():
    def attempt() -> float:
        transport = Rank0Transport()
        sched = Scheduler(transport, notify=lambda ins: None)
        sched.state = st.SchedulerState({1: "h", 2: "h"})
        t0 = time.monotonic()
        sched.frees.add(1, ["old1"])
        sched.frees.add(2, ["old2"])
        sched._dispatch(0, (m.SUBMIT, [(TaskSpec("k", fn_name="f"), "fn", b"fn", b"data", [])]), [])
        sched._flush()
        elapsed = time.monotonic() - t0
        if elapsed >= FREE_DELAY:
            return elapsed  # the frees were due: they went on their own
        (rank,) = [r for r in (1, 2) if sched.state.processing_on(r) == ["k"]]
        assert [(dest, h[0]) for dest, h in transport.sent] == [(rank, m.COMPUTE)]
        assert transport.sent[0][1][3] == [f"old{rank}"]
        assert sched.table_sizes()["scheduler.frees"] == 1  # the other rank's free still waits
        return elapsed

    _fast(attempt)
