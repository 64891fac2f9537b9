"""Fixtures of the ported CPython concurrent.futures tests: one client per backend.

Collected directly, the suite runs on the local, thread and process backends;
``cpython_main.py`` runs it on rank 0 of a real ``mpiexec -n 4`` world
(``HPCDIST_CPYTHON_ATTACHED=1``: the client attaches to the mpi world).
"""

from __future__ import annotations

import os

import pytest

import hpcdist

ATTACHED = os.environ.get("HPCDIST_CPYTHON_ATTACHED") == "1"


def _scope(fixture_name, config):
    # the attached world lives as long as the rank-0 process; a world of our own ends with its module,
    # so no worker (nor its SIGINT handler) outlives this directory's tests
    return "session" if ATTACHED else "module"


@pytest.fixture(scope=_scope, params=["attached"] if ATTACHED else ["local", "thread", "process"])
def client(request):
    if request.param == "attached":
        c = hpcdist.Client()  # attaches to the world started by `hpcdist exec`
        assert c.backend == "mpi"
    else:
        c = hpcdist.Client(backend=request.param, workers=2)
    yield c
    c.close()


@pytest.fixture
def executor(client):
    """What CPython's ExecutorMixin gives each test: a fresh executor, shut down (waiting) after it."""
    ex = client.get_executor()
    yield ex
    ex.shutdown(wait=True)


@pytest.fixture
def create_event(tmp_path):
    """CPython's ``self.create_event()``: an event a task on any rank can wait for."""
    from cpy_util import FileEvent

    made = []

    def create():
        made.append(FileEvent(str(tmp_path / f"event-{len(made)}")))
        return made[-1]

    yield create
    for event in made:  # never leave a task waiting on a worker
        event.set()


@pytest.fixture(params=["set", "task"])
def fixed(request, client):
    """CPython's module-level futures in every state, as hpcdist futures of ``client``.

    ``set``: finished ones got their value through set_result/set_exception; ``task``: they
    are real tasks' results.
    """
    from cpy_util import fixed_futures

    return fixed_futures(client, request.param)
