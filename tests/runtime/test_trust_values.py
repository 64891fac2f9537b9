"""One bad value fails its task, gather or result only: the world, other tasks and held results go on.

Collected directly, these run on the local, thread and process backends;
tests/runtime/test_trust_mpi.py runs this same file on rank 0 of a real ``mpiexec -n 3`` world
(``HPCDIST_TRUST_ATTACHED=1``).
"""

from __future__ import annotations

import os
import socket
import threading

import pytest

import hpcdist
from hpcdist.errors import SerializationError

ATTACHED = os.environ.get("HPCDIST_TRUST_ATTACHED") == "1"

_KEEP: list = []  # sockets made by tasks in this process, closed at the end (no ResourceWarning)


@pytest.fixture(scope="module", params=["attached"] if ATTACHED else ["local", "thread", "process"])
def client(request):
    c = hpcdist.Client() if request.param == "attached" else hpcdist.Client(backend=request.param, workers=2)
    yield c
    c.close()
    for s in _KEEP:
        s.close()


# ---- values that cannot be pickled, each a class of its own ---------------------------------------


def make_lock():
    return threading.Lock()


def make_socket():
    s = socket.socket()
    _KEEP.append(s)
    return s


def make_generator():
    return (i for i in range(3))


class HoldsLambda:
    """A lambda closing over a lock: cloudpickle pickles the lambda, not what it closes over."""

    def __init__(self):
        lock = threading.Lock()
        self.fn = lambda: lock


def make_holds_lambda():
    return HoldsLambda()


class ReduceRaisesHalfWay:
    """Its __reduce__ raises after the pickler has written part of the container around it."""

    def __reduce__(self):
        raise RuntimeError("__reduce__ gave up half way")


def make_half_way():
    return [1, "two", {"three": 3}, ReduceRaisesHalfWay(), 5]


class Big:
    """Looks large (sizeof reads ``nbytes``), so a worker does not pickle it when the task ends."""

    nbytes = 10**7


class BigLock(Big):
    def __init__(self):
        self.lock = threading.Lock()


def make_big_lock():
    return BigLock()


UNPICKLABLE = {
    "lock": (make_lock, "_thread.lock"),
    "socket": (make_socket, "socket.socket"),
    "generator": (make_generator, "builtins.generator"),
    "lambda-over-lock": (make_holds_lambda, "HoldsLambda"),
    "reduce-raises-half-way": (make_half_way, "builtins.list"),
    "big-with-lock": (make_big_lock, "BigLock"),
}


def inc(x):
    return x + 1


def identity(x):
    return x


@pytest.mark.parametrize("case", list(UNPICKLABLE))
def test_unpicklable_result_fails_that_task_only(client, case):
    make, type_name = UNPICKLABLE[case]
    held = client.submit(inc, 41, pure=False)
    assert held.result(timeout=60) == 42
    bad = client.submit(make, pure=False)
    with pytest.raises(SerializationError) as info:
        bad.result(timeout=60)
    message = str(info.value)
    assert type_name in message and "cannot be pickled" in message and bad.key in message, message
    assert isinstance(info.value, TypeError)  # as the standard library's pickling errors are
    # the world goes on: new tasks run, the held result is still there, gather of it too
    assert client.submit(inc, 1, pure=False).result(timeout=60) == 2
    assert held.result(timeout=60) == 42
    assert client.gather([held]) == [42]
    with pytest.raises(SerializationError):
        client.gather([held, bad])
    assert client.map(inc, range(10), pure=False)[-1].result(timeout=60) == 10


def test_unpicklable_results_many_at_once(client):
    bad = [client.submit(make_lock, pure=False) for _ in range(20)]
    good = client.map(inc, range(20), pure=False)
    assert client.gather(good) == list(range(1, 21))
    for fut in bad:
        with pytest.raises(SerializationError):
            fut.result(timeout=60)


class SecondTimeBomb(Big):
    """Pickles once, then raises: a state change between two sends (a file handle closed, ...)."""

    def __init__(self):
        self.count = 0

    def __reduce__(self):
        self.count += 1
        if self.count >= 2:
            raise RuntimeError("this object pickles only once")
        return (SecondTimeBomb, ())


def make_bomb():
    return SecondTimeBomb()


def test_value_that_fails_on_second_pickling(client):
    fut = client.submit(make_bomb, pure=False)
    assert isinstance(fut.result(timeout=60), SecondTimeBomb)  # the first pickling works
    with pytest.raises(SerializationError, match="SecondTimeBomb"):
        fut.result(timeout=60)
    assert client.submit(inc, 2, pure=False).result(timeout=60) == 3


def _explode(text):
    raise ValueError(text)


class LoadBomb:
    """Pickles fine; rebuilding it raises (a class missing, a file gone, ...)."""

    def __reduce__(self):
        return (_explode, ("cannot rebuild a LoadBomb here",))


class BigLoadBomb(LoadBomb, Big):
    pass


def make_load_bomb():
    return LoadBomb()


def make_big_load_bomb():
    return BigLoadBomb()


@pytest.mark.parametrize("make", [make_load_bomb, make_big_load_bomb], ids=["inline", "gathered"])
def test_result_that_fails_to_unpickle_on_rank0(client, make):
    fut = client.submit(make, pure=False)
    with pytest.raises(SerializationError, match="cannot be unpickled on rank 0") as info:
        fut.result(timeout=60)
    assert fut.key in str(info.value) and "cannot rebuild a LoadBomb" in str(info.value)
    assert client.submit(inc, 3, pure=False).result(timeout=60) == 4


def _other_rank(client, fut):
    holder = client.who_has([fut])[fut.key][0]
    return next(r for r in sorted(client.workers) if r != holder)


@pytest.mark.parametrize("make", [make_load_bomb, make_big_load_bomb, make_bomb, make_big_lock],
                         ids=["unpickle-inline", "unpickle-big", "second-pickling", "unpicklable-big"])
def test_dependency_that_cannot_reach_a_peer_fails_the_dependent(client, make):
    if client.backend == "local":
        pytest.skip("the local backend has one worker: a dependency never travels to a peer")
    src = client.submit(make, pure=False)
    src.exception(timeout=60)  # finished (held on its worker)
    if make is make_bomb:
        src.result(timeout=60)  # its one good pickling is used up on rank 0
    dest = _other_rank(client, src)
    dep = client.submit(identity, src, workers=[dest], pure=False)
    with pytest.raises(SerializationError) as info:
        dep.result(timeout=60)
    assert src.key in str(info.value), str(info.value)
    # the world goes on, and the peer still runs tasks
    assert client.submit(inc, 5, workers=[dest], pure=False).result(timeout=60) == 6
    assert client.submit(identity, client.submit(inc, 1, pure=False), workers=[dest], pure=False).result(
        timeout=60) == 2


@pytest.mark.parametrize("arg", [threading.Lock(), (i for i in range(2)), [1, ReduceRaisesHalfWay()]],
                         ids=["lock", "generator", "reduce-raises"])
def test_unpicklable_argument_raises_in_the_caller(client, arg):
    with pytest.raises((TypeError, RuntimeError, SerializationError)):
        client.submit(identity, arg, pure=False)
    assert client.submit(inc, 7, pure=False).result(timeout=60) == 8


def test_unpicklable_function_raises_in_the_caller(client):
    lock = threading.Lock()

    def closes_over_lock():
        return lock

    with pytest.raises(TypeError):
        client.submit(closes_over_lock, pure=False)
    assert client.submit(inc, 8, pure=False).result(timeout=60) == 9
