"""Client bookkeeping without a world: release batching and its ordering, and argument pickling.

A fake world records the messages the client sends; a fake scheduler handles them in order,
the way the real one does: a SUBMIT makes its keys wanted, a doorbell (a callable
that hands over released keys) is rung once the messages sent before it were handled.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import random
import threading

import pytest

from hpcdist.runtime import messages as m
from hpcdist.runtime import serialize
from hpcdist.runtime.client import Client, Future
from hpcdist.runtime.scheduling.vocabulary import Erred, Memory
from hpcdist.backends.local import LocalWorld
from hpcdist.runtime.world import set_current_world


def noop(x=None):
    return x


class FakeWorld:
    """Records what the client sends; ``process()`` plays the scheduler, in order."""

    closed = False

    def __init__(self, backend: str = "fake") -> None:
        self.backend = backend
        self.info = {1: {"host": "h", "cores": 1}, 2: {"host": "h", "cores": 1}}
        self.queue: list[tuple] = []
        self.wanted: dict[str, bool] = {}
        self.taken: list[list[str]] = []  # what each doorbell handed over
        self.listener = None

    def listen(self, fn):
        self.listener = fn

    def unlisten(self, fn):
        self.listener = None

    def send(self, header):
        self.queue.append(header)

    def drive(self, done, timeout=None):
        return False

    def doorbell(self, take):
        self.queue.append(("doorbell", take))

    def process(self, n: int | None = None, late: list | None = None) -> None:
        """Handle the first ``n`` queued messages (all by default).

        With ``late``, doorbells reached are appended to it instead of rung: the real
        scheduler rings them at the end of a round, after later messages (:meth:`ring`).
        """
        n = len(self.queue) if n is None else n
        todo, self.queue = self.queue[:n], self.queue[n:]
        for header in todo:
            if header[0] == m.SUBMIT:
                for task in header[1]:
                    self.wanted[task[0].key] = True
            elif header[0] == "doorbell":
                if late is not None:
                    late.append(header[1])
                else:
                    self.ring([header[1]])

    def ring(self, doorbells: list) -> None:
        while doorbells:
            keys = doorbells.pop(0)()
            self.taken.append(list(keys))
            for key in keys:
                self.wanted[key] = False

    def kinds(self) -> list[str]:
        return [h[0] for h in self.queue]


@pytest.fixture
def world():
    w = FakeWorld()
    set_current_world(w)
    yield w
    set_current_world(None)


@pytest.fixture
def client(world):
    c = Client()  # attaches to the fake world
    yield c
    c.close()


def live_keys(futures: list[Future]) -> set[str]:
    return {f.key for f in futures}


def test_dropping_many_futures_sends_one_release(client, world):
    futures = client.map(noop, range(1000))
    world.process()
    keys = live_keys(futures)
    del futures
    assert world.kinds() == ["doorbell"]  # one doorbell for the 1000 keys
    world.process()
    assert sorted(world.taken[0]) == sorted(keys)
    assert not any(world.wanted.values())


def test_release_after_a_newer_submit_is_not_taken_by_an_older_doorbell(client, world):
    first = client.submit(noop, 1)
    del first  # opens a batch: its doorbell is queued now
    fut = client.submit(noop, 2)  # SUBMIT queued after that doorbell
    key = fut.key
    del fut  # must not join the open batch: that doorbell is handled before the SUBMIT
    assert world.kinds() == [m.SUBMIT, "doorbell", m.SUBMIT, "doorbell"]
    world.process()
    assert key not in world.taken[0] and world.taken[1] == [key]
    assert world.wanted[key] is False  # released after it was submitted: nothing leaks


def test_release_never_undoes_a_newer_submit_of_the_same_key(client, world):
    fut = client.submit(noop, 3)
    world.process()
    del fut  # doorbell queued, not handled yet
    again = client.submit(noop, 3)  # the same (pure) key, submitted after the release
    world.process()
    assert world.wanted[again.key] is True  # the release came first, the submit wins
    del again
    world.process()
    assert world.wanted == {k: False for k in world.wanted}


def test_random_interleavings_keep_wanted_equal_to_live_futures(client, world):
    rng = random.Random(7)
    live: list[Future] = []
    for step in range(4000):
        op = rng.random()
        if op < 0.35:
            live.append(client.submit(noop, rng.randrange(40)))
        elif op < 0.45:
            live.extend(client.map(noop, [rng.randrange(40) for _ in range(rng.randrange(1, 4))]))
        elif op < 0.8 and live:
            live.pop(rng.randrange(len(live)))
        else:
            world.process(rng.randrange(len(world.queue) + 1))  # the scheduler lags behind
        if step % 50 == 0:  # whenever the scheduler has caught up, it wants exactly the live keys
            world.process()
            assert {k for k, wanted in world.wanted.items() if wanted} == live_keys(live)
    world.process()
    assert {k for k, wanted in world.wanted.items() if wanted} == live_keys(live)
    del live
    world.process()
    assert not any(world.wanted.values())


def test_doorbells_rung_late_still_keep_wanted_equal_to_live_futures(client, world):
    # The scheduler rings a doorbell at the end of some later round, after messages sent
    # after it; a key submitted again in the meantime has a live future and is not taken.
    rng = random.Random(11)
    live: list[Future] = []
    late: list = []
    for step in range(4000):
        op = rng.random()
        if op < 0.35:
            live.append(client.submit(noop, rng.randrange(30)))
        elif op < 0.7 and live:
            live.pop(rng.randrange(len(live)))
        elif op < 0.85:
            world.process(rng.randrange(len(world.queue) + 1), late=late)
        elif late:
            world.ring([late.pop(0)])  # the oldest doorbell rings
        if step % 50 == 0:
            world.process(late=late)
            world.ring(late)
            assert {k for k, wanted in world.wanted.items() if wanted} == live_keys(live)
    del live
    world.process(late=late)
    world.ring(late)
    assert not any(world.wanted.values())


def test_a_key_submitted_again_before_its_doorbell_rings_stays_wanted(client, world):
    fut = client.submit(noop, 8)
    key = fut.key
    del fut  # doorbell queued behind the SUBMIT
    again = client.submit(noop, 8)
    late: list = []
    world.process(late=late)  # both SUBMITs handled, the doorbell not rung yet
    world.ring(late)
    assert world.taken == [[]] and world.wanted[key] is True
    del again
    world.process()
    assert world.wanted[key] is False


def test_a_future_dropped_while_the_lock_is_held_is_counted_on_unlock(client, world):
    # What the garbage collector does when it finalizes a future inside one of the client's
    # own locked sections (same thread): it must neither deadlock nor lose the release.
    fut = client.submit(noop, 4)
    key = fut.key
    world.process()
    client.future_table._lock.acquire()
    del fut
    assert world.queue == []  # deferred: the lock was taken
    client.future_table._unlock()
    world.process()
    assert world.taken == [[key]] and world.wanted[key] is False


def test_a_future_dropped_in_another_thread_while_the_lock_is_held(client, world):
    futures = [client.submit(noop, 5)]
    key = futures[0].key
    world.process()
    client.future_table._lock.acquire()
    dropper = threading.Thread(target=futures.clear)
    dropper.start()
    dropper.join(10)
    assert not dropper.is_alive() and world.queue == []
    client.future_table._unlock()
    world.process()
    assert world.wanted[key] is False


def test_futures_in_a_reference_cycle_are_released_by_the_collector(client, world):
    fut = client.submit(noop, 6)
    key = fut.key
    world.process()
    holder = {"future": fut}
    holder["self"] = holder
    del fut, holder
    gc.collect()
    world.process()
    assert world.wanted[key] is False


def test_local_backend_drops_released_keys_before_the_next_message():
    w = LocalWorld()
    set_current_world(w)
    try:
        c = Client()
        futures = c.map(noop, range(3))
        keys = [f.key for f in futures]
        assert c.has_what() == {1: sorted(keys)}
        del futures
        assert c.has_what() == {1: []}  # the doorbell was rung before the query
        again = c.submit(noop, 0)  # released, then submitted again: computed afresh
        assert again.key == keys[0] and again.result() == 0
        c.close()
    finally:
        set_current_world(None)
        w.shutdown()


def test_futures_work_with_the_standard_library(client, world):
    futures = client.map(noop, range(3))
    world.process()
    for fut in futures[:2]:
        world.listener(Memory(fut.key, serialize.dumps(fut.key)[0]))
    done, pending = cf.wait(futures, timeout=0)
    assert done == set(futures[:2]) and pending == {futures[2]}
    assert [f for f in cf.as_completed(futures[:2], timeout=0)]
    with pytest.raises(cf.TimeoutError):
        futures[2].result(timeout=0.01)
    assert futures[0].result() == futures[0].key  # the small result came with "memory"
    world.listener(Erred(futures[2].key, ValueError("boom")))
    assert isinstance(futures[2].exception(), ValueError)
    with pytest.raises(ValueError, match="boom"):
        futures[2].result()


def test_gather_wakes_once_everything_is_done(client, world):
    futures = client.map(noop, range(50))
    world.process()

    def finish():
        for fut in futures:
            world.listener(Memory(fut.key, serialize.dumps(fut.key)[0]))

    threading.Timer(0.01, finish).start()
    assert client.gather(futures) == [f.key for f in futures]


# ---- argument pickling --------------------------------------------------------------------


def submitted(world: FakeWorld) -> list[tuple]:
    return [task for h in world.queue if h[0] == m.SUBMIT for task in h[1]]


def test_plain_arguments_equal_calls_equal_keys(client, world):
    a = client.submit(noop, (1, "x", 2.5))
    b = client.submit(noop, (1, "x", 2.5))
    c = client.submit(noop, (1, "x", 2.5, 0))
    assert a.key == b.key != c.key
    assert client.map(noop, [(1, "x", 2.5)])[0].key == a.key  # map and submit agree


def test_plain_arguments_pickle_as_the_general_path_would(client, world):
    fut = client.submit(noop, 1, "two", [3.0, None], flag=True)
    spec, fn_id, fn_bytes, data, buffers = submitted(world)[0]
    general, _ = serialize.dumps(((1, "two", [3.0, None]), {"flag": True}), persistent_id=lambda obj: None)
    assert data == general and buffers == [] and spec.deps == ()
    assert serialize.loads(data) == ((1, "two", [3.0, None]), {"flag": True})
    del fut


def test_futures_in_arguments_take_the_general_path(client, world):
    dep = client.submit(noop, 1)
    fut = client.submit(noop, [dep, 2], other=(dep,))
    spec, _, _, data, _ = submitted(world)[1]
    assert spec.deps == (dep.key,)
    with pytest.raises(Exception):
        serialize.loads(data)  # holds a persistent id: needs the worker's resolver
    args, kwargs = serialize.loads(data, persistent_load=lambda pid: f"value of {pid[1]}")
    assert args == ([f"value of {dep.key}", 2],) and kwargs == {"other": (f"value of {dep.key}",)}
    assert fut.key == client.submit(noop, [dep, 2], other=(dep,)).key


def test_arguments_plain_pickle_cannot_handle_still_travel(client, world):
    offset = 10
    fut = client.submit(noop, lambda x: x + offset)
    _, _, _, data, _ = submitted(world)[0]
    (fn,), _ = serialize.loads(data)
    assert fn(1) == 11
    del fut


def _fail(i):
    raise ValueError(f"bad {i}")


def test_errors_kept_for_dependents_are_bounded_and_shared():
    from hpcdist.runtime import client as client_module

    with Client(backend="thread", workers=2) as c:
        first = c.submit(_fail, -1)
        dependent = c.submit(abs, first)
        assert dependent.exception() is first.exception()  # one exception object per failure
        futures = c.map(_fail, range(client_module._ERRORS_KEPT + 50))
        assert all(isinstance(f.exception(), ValueError) for f in futures)
        assert len(c._errors) <= client_module._ERRORS_KEPT
