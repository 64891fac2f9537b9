"""The worker's task path over a fake transport: arguments, dependencies, reports, state file."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from hpcdist import Client
from hpcdist.runtime import messages as m
from hpcdist.runtime import serialize
from hpcdist.postmortem import postmortem
from hpcdist.runtime.worker import INLINE_MAX, _STOP, Worker


class FakeTransport:
    rank = 1
    size = 2

    def __init__(self) -> None:
        self.sent: list[tuple] = []

    def host_of(self, rank: int) -> str:
        return "h"

    def send(self, dest: int, header: tuple, buffers=()) -> None:
        self.sent.append((dest, header, list(buffers)))

    def interrupt(self) -> None:
        pass


def what_runs(state_dir: str) -> list[str]:
    return postmortem(state_dir)


def add(a, b=0):
    return a + b


def echo(x):
    return x


def run(worker: Worker, entries: list[tuple], buffers: list | None = None, frees: list | None = None) -> list[tuple]:
    """Hand ``entries`` to the worker as one COMPUTE, run them, return the DONE records."""
    worker._on_compute(0, (m.COMPUTE, entries, None, frees), buffers or [])
    worker.stop()
    worker.runq.rotate(-1)  # stop() queued _STOP first: run the tasks before it
    assert worker.runq[-1] is _STOP
    worker.execute()
    return [r for _, h, _ in worker.transport.sent if h[0] == m.DONE for r in h[1]]


def entry(key, fn, args, kwargs=None, deps=None, nbuf=0, fn_id=None):
    data, bufs = serialize.dumps((args, kwargs or {}), persistent_id=lambda o: None)
    return (key, fn_id or fn.__name__, serialize.dumps(fn)[0], data, nbuf, deps or {}), bufs


class Ref:
    """Stands in for a client Future inside task arguments."""

    def __init__(self, key: str) -> None:
        self.key = key


def test_tasks_with_and_without_dependencies():
    worker = Worker(FakeTransport())
    first, _ = entry("a", add, (1,), {"b": 2})
    (key, nbytes, _, fetched, inline), = run(worker, [first])
    assert worker.data["a"] == 3
    assert key == "a" and fetched == () and pickle.loads(inline) == 3 and nbytes == len(inline)
    # a dependency travels as a persistent id and is resolved from the worker's data
    data, _ = serialize.dumps(((0,), {"b": Ref("a")}),
                              persistent_id=lambda o: (m.FUTURE_REF, o.key) if isinstance(o, Ref) else None)
    worker.transport.sent.clear()
    records = run(worker, [("b", "add", None, data, 0, {"a": [1]})])
    assert worker.data["b"] == 3 and records[0][0] == "b"


def test_small_results_ride_along_big_ones_do_not():
    worker = Worker(FakeTransport())
    entries = [entry(k, echo, args)[0] for k, args in
               [("s", ("x",)), ("big", ("y" * (INLINE_MAX + 1),))]]
    entries.append(entry("t", add, ((1, 2), (3,)))[0])
    entries.append(entry("arr", np.zeros, (100,))[0])
    records = {r[0]: r for r in run(worker, entries)}
    assert pickle.loads(records["s"][4]) == "x"
    assert records["big"][4] is None and records["big"][1] > INLINE_MAX
    assert pickle.loads(records["t"][4]) == (1, 2, 3)
    assert np.array_equal(pickle.loads(records["arr"][4]), np.zeros(100))


def test_state_file_names_the_running_task_and_clears_when_idle(tmp_path):
    worker = Worker(FakeTransport(), state_file=str(tmp_path / "rank-1.task"))
    assert what_runs(str(tmp_path)) == []
    run(worker, [entry("the-task", what_runs, (str(tmp_path),))[0]])
    assert worker.data["the-task"] == ["rank 1 was running task 'the-task' when the job ended"]
    assert what_runs(str(tmp_path)) == []  # idle again


@pytest.mark.parametrize("backend, rank", [("thread", 2), ("local", 1)])
def test_a_task_knows_the_rank_it_runs_on(backend, rank):
    from hpcdist.runtime.running import current_rank

    with Client(backend=backend, workers=2) as c:
        assert c.submit(current_rank, pure=False, workers=[rank]).result() == rank
    assert current_rank() is None  # not inside a task


def test_a_compute_drops_the_keys_it_frees_before_its_tasks_run():
    worker = Worker(FakeTransport())
    run(worker, [entry("a", add, (1,))[0], entry("old", add, (5,))[0]])
    worker.transport.sent.clear()
    # "a" is freed and computed again in the same message: the new value stays
    run(worker, [entry("a", add, (2,))[0]], frees=["a", "old"])
    assert worker.data == {"a": 2}


def _ref_args(*keys):
    data, _ = serialize.dumps((tuple(Ref(k) for k in keys), {}),
                              persistent_id=lambda o: (m.FUTURE_REF, o.key) if isinstance(o, Ref) else None)
    return data


def test_a_second_compute_of_a_key_still_fetching_runs_it_once_its_input_arrives():
    # Rank 0 sends a key again while the worker still fetches its input for the first COMPUTE (a
    # stale failure report re-placed it): the later COMPUTE replaces the earlier, and the task runs.
    # It used to be lost: the earlier copy's wake-up popped the later one from the fetching table.
    worker = Worker(FakeTransport())
    task = ("b", "add", serialize.dumps(add)[0], _ref_args("a"), 0, {"a": [2]})
    worker._on_compute(0, (m.COMPUTE, [task], None, None), [])
    worker._on_compute(0, (m.COMPUTE, [task], None, None), [])
    assert [h for _, h, _ in worker.transport.sent] == [(m.WANT, ["a"])]  # asked once
    data, bufs = serialize.dumps(41)
    worker._on_have(2, (m.HAVE, [("a", data, len(bufs))]), bufs)
    records = run(worker, [])
    assert [r[0] for r in records] == ["b"] and worker.data["b"] == 41


def test_a_second_compute_of_a_key_whose_input_cannot_come_fails_it_once():
    from hpcdist.errors import PeerLost

    worker = Worker(FakeTransport())
    task = ("b", "add", serialize.dumps(add)[0], _ref_args("a"), 0, {"a": [2]})
    worker._on_compute(0, (m.COMPUTE, [task], None, None), [])
    worker._on_compute(0, (m.COMPUTE, [task], None, None), [])
    worker._lost("a", PeerLost("every holder of 'a' was lost"))
    run(worker, [])
    failed = [h for _, h, _ in worker.transport.sent if h[0] == m.FAILED]
    assert [(h[1], h[6]) for h in failed] == [("b", True)]
