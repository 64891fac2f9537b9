"""The scheduler has an input's holder push it to the worker that will run the task.

A push is only announced (holders ``None`` in the COMPUTE) when it is sent in the same flush;
otherwise the worker gets the holders list and asks for the input itself, so a copy that was
dropped can never leave a task waiting for a push that will not come.
"""

from __future__ import annotations

import hpcdist
from hpcdist.runtime import messages as m
from hpcdist.runtime.scheduling import state as st
from hpcdist.runtime.scheduling.vocabulary import TaskSpec
from hpcdist.runtime.scheduler import Scheduler


class _FakeTransport:
    size = 5
    rank = 0

    def __init__(self, hosts: dict[int, str]) -> None:
        self.hosts = hosts
        self.sent: list[tuple[int, tuple]] = []

    def host_of(self, rank: int) -> str:
        return self.hosts[rank]

    def send(self, dest: int, header: tuple, buffers=()) -> None:
        self.sent.append((dest, header))


def _scheduler(hosts: dict[int, str]) -> tuple[Scheduler, _FakeTransport]:
    transport = _FakeTransport(hosts)
    sched = Scheduler(transport, notify=lambda ins: None)
    sched.state = st.SchedulerState({r: h for r, h in hosts.items() if r})
    return sched, transport


def test_a_remote_input_is_pushed_once_and_announced_only_with_the_push():
    sched, transport = _scheduler({0: "a", 1: "a", 2: "a", 3: "a", 4: "a"})
    deps = sched.pushes.deps(2, {"x": [1], "local": [2]})
    assert deps == {"x": (1, [1]), "local": [2]}  # x pushed by rank 1; rank 2 has "local"
    sched._flush()
    assert (1, (m.PUSH, [("x", 2)])) in transport.sent
    # a second task on rank 2 before it reported its copy: no second push, the worker decides
    assert sched.pushes.deps(2, {"x": [1]}) == {"x": [1]}
    # once rank 2 reported the copy (and later dropped it), a new need pushes again
    sched._known(2, ("x",))
    assert sched.pushes.deps(2, {"x": [1]}) == {"x": (1, [1])}


def test_the_pusher_is_the_holder_the_worker_would_have_asked():
    sched, transport = _scheduler({0: "a", 1: "b", 2: "a", 3: "b", 4: "a"})
    sched.pushes.deps(4, {"y": [1, 2, 3]})  # rank 4 is on host a: the same-host holder 2 sends
    sched.pushes.deps(3, {"y": [1, 2, 3]})  # rank 3 holds it already: nothing to push
    sched._flush()
    pushes = [(dest, header) for dest, header in transport.sent if header[0] == m.PUSH]
    assert pushes == [(2, (m.PUSH, [("y", 4)]))]


def test_inputs_made_on_one_worker_reach_a_task_pinned_to_another():
    with hpcdist.Client(backend="thread", workers=3) as client:
        made = [client.submit(list, range(i, i + 5), workers=[1]) for i in range(4)]
        total = client.submit(lambda *xs: sum(map(sum, xs)), *made, workers=[3])
        assert total.result() == sum(sum(range(i, i + 5)) for i in range(4))
        assert 3 in client.who_has([made[0]])[made[0].key]  # the pushed copy is known


def test_a_transition_caused_by_a_done_message_names_it():
    sched, _ = _scheduler({0: "a", 1: "a", 2: "a", 3: "a", 4: "a"})
    sched._dispatch(0, (m.SUBMIT, [(TaskSpec("k", fn_name="f"), "fn", b"fn", b"data", [])]), [])
    (rank,) = [r for r in range(1, 5) if sched.state.processing_on(r) == ["k"]]
    sched._dispatch(rank, (m.DONE, [("k", 8, 0.01, (), None)]), [])
    story = sched.state.story("k")
    assert story[-1][1:3] == ("processing", "memory") and story[-1][3].startswith(f"done-{rank}-")
    assert all(cause.startswith("submit-0-") for _, _, _, cause in story[:-1])
