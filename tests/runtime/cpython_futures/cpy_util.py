"""Helpers of the ported CPython concurrent.futures tests (tests/runtime/cpython_futures).

CPython's ``create_future(state, exception, result)`` writes a plain future's private
fields; here the same states are reached through the public API of an hpcdist future of a
real client, whose key is never submitted (so it stays pending until the test moves it).
"""

from __future__ import annotations

import itertools
import os
import sys
import time
import types
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING, RUNNING

import pytest

import hpcdist

_keys = itertools.count()


def create_future(client, state=PENDING, exception=None, result=None):
    """An hpcdist future of ``client`` in ``state`` (CPython's util.create_future)."""
    f = hpcdist.Future(f"cpython-never-submitted-{os.getpid()}-{next(_keys)}", client)
    if state == RUNNING:
        assert f.set_running_or_notify_cancel()
    elif state == CANCELLED:
        assert f.cancel()
    elif state == CANCELLED_AND_NOTIFIED:
        assert f.cancel()
        assert not f.set_running_or_notify_cancel()
    elif state == FINISHED:
        if exception is not None:
            f.set_exception(exception)
        else:
            f.set_result(result)
    assert f._state == state
    return f


def raise_oserror():
    raise OSError()


def identity(x):
    return x


def fixed_futures(client, kind):
    """PENDING_FUTURE ... SUCCESSFUL_FUTURE of CPython's util, as a namespace."""
    ns = types.SimpleNamespace(
        PENDING_FUTURE=create_future(client, state=PENDING),
        RUNNING_FUTURE=create_future(client, state=RUNNING),
        CANCELLED_FUTURE=create_future(client, state=CANCELLED),
        CANCELLED_AND_NOTIFIED_FUTURE=create_future(client, state=CANCELLED_AND_NOTIFIED),
    )
    if kind == "set":
        ns.EXCEPTION_FUTURE = create_future(client, state=FINISHED, exception=OSError())
        ns.SUCCESSFUL_FUTURE = create_future(client, state=FINISHED, result=42)
    else:
        ns.EXCEPTION_FUTURE = client.submit(raise_oserror, pure=False)
        ns.SUCCESSFUL_FUTURE = client.submit(identity, 42, pure=False)
        hpcdist.wait([ns.EXCEPTION_FUTURE, ns.SUCCESSFUL_FUTURE], timeout=30)
        assert ns.EXCEPTION_FUTURE._state == FINISHED and ns.SUCCESSFUL_FUTURE._state == FINISHED
    return ns


class FileEvent:
    """A threading.Event-like flag that tasks on any rank (of one host or a shared file system) see."""

    def __init__(self, path: str) -> None:
        self.path = path

    def set(self) -> None:
        with open(self.path, "w"):
            pass

    def is_set(self) -> bool:
        return os.path.exists(self.path)

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not os.path.exists(self.path):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True


def needs_background(client) -> None:
    """Tests whose task must still run while the caller goes on cannot run on ``local``,
    which runs every call inline, at submit (docs/backends.md): a task waiting for the
    caller would wait forever there."""
    if client.backend == "local":
        pytest.skip("the local backend runs each task inline at submit: no task can wait for the caller")


def gc_collect() -> None:
    """test.support.gc_collect ("for PyPy or other GCs"): CPython frees by reference counting,
    so nothing is collected there, which makes the tests stricter (and a full collection
    of the test process costs a tenth of a second)."""
    if sys.implementation.name != "cpython":
        import gc

        gc.collect()


class captured_stderr:
    """test.support.captured_stderr, as a plain interpreter shows it.

    Without handlers, logging's last resort writes the ``concurrent.futures`` logger's
    records to sys.stderr; pytest installs handlers of its own, so the logger gets one that
    writes to the captured stream for the duration.
    """

    def __enter__(self):
        import io
        import logging

        self.old, sys.stderr = sys.stderr, io.StringIO()
        self.handler = logging.StreamHandler(sys.stderr)
        logging.getLogger("concurrent.futures").addHandler(self.handler)
        return sys.stderr

    def __exit__(self, *exc):
        import logging

        logging.getLogger("concurrent.futures").removeHandler(self.handler)
        sys.stderr = self.old
