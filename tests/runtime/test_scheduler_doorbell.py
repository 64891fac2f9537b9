"""Doorbells (the client's released keys) ring only after the messages sent before them.

The client hands the scheduler a doorbell without a message; :meth:`Scheduler.ring` takes
its keys once every loopback message the client had sent by then has been handled, so a
release can never reach the state before the SUBMIT of the key it releases.
"""

from __future__ import annotations

from hpcdist.runtime import messages as m
from hpcdist.runtime.scheduling import state as st
from hpcdist.runtime.scheduler import Scheduler
from hpcdist.runtime.scheduling.vocabulary import TaskSpec


class _FakeTransport:
    size = 2
    rank = 0

    def host_of(self, rank: int) -> str:
        return "h"

    def send(self, dest: int, header: tuple, buffers=()) -> None:
        pass


def _submit(key: str) -> tuple:
    return (m.SUBMIT, [(TaskSpec(key), "f", b"", b"", [])])


def test_a_doorbell_waits_for_the_messages_sent_before_it():
    sched = Scheduler(_FakeTransport(), notify=lambda ins: None)
    sched.state = st.SchedulerState({1: "h"})
    sched.sent = 1  # the client sent SUBMIT(k) ...
    sched.doorbells.append((sched.sent, lambda: ["k"]))  # ... then dropped its future
    assert sched.ring() is False and len(sched.doorbells) == 1  # SUBMIT not handled yet: keep it
    sched._dispatch(0, _submit("k"), [])
    assert sched.state.unfinished_wanted() == ["k"]
    assert sched.ring() is True and not sched.doorbells
    assert sched.state.unfinished_wanted() == []  # released: nobody waits for it any more
