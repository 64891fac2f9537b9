"""Start-up settings of a world (hpcdist.runtime.world)."""

from __future__ import annotations

import threading
import time

import pytest

from hpcdist.errors import HpcdistError
from hpcdist.runtime import world


def test_startup_timeout_default_and_override(monkeypatch):
    monkeypatch.delenv("HPCDIST_STARTUP_TIMEOUT", raising=False)
    assert world.startup_timeout() == world.STARTUP_TIMEOUT
    monkeypatch.setenv("HPCDIST_STARTUP_TIMEOUT", " 2.5 ")
    assert world.startup_timeout() == 2.5


@pytest.mark.parametrize("text", ["soon", "0", "-3", "nan"])
def test_startup_timeout_rejects_a_bad_value_with_a_clear_error(monkeypatch, text):
    monkeypatch.setenv("HPCDIST_STARTUP_TIMEOUT", text)
    with pytest.raises(HpcdistError, match=r"HPCDIST_STARTUP_TIMEOUT=.*positive number of seconds"):
        world.startup_timeout()


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_bad_startup_timeout_fails_before_any_worker_starts(monkeypatch, backend):
    monkeypatch.setenv("HPCDIST_STARTUP_TIMEOUT", "soon")
    before = set(threading.enumerate())
    with pytest.raises(HpcdistError, match="HPCDIST_STARTUP_TIMEOUT"):
        world.start_world(backend, 1)
    assert set(threading.enumerate()) <= before


def test_thread_world_tears_down_at_once_after_a_scheduler_failure(capfd):
    w = world.start_world("thread", 2)
    w.send(("no-such-message",))  # a bug in the scheduler's loop: it fails and aborts the world
    deadline = time.monotonic() + 10
    while w.scheduler.failed is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(w.scheduler.failed, HpcdistError)
    start = time.monotonic()
    w.shutdown()
    assert time.monotonic() - start < 2.0  # the workers' executors stopped with the aborted transport
    assert not [t.name for t in threading.enumerate() if t.name.startswith("hpcdist-worker-")]
    err = capfd.readouterr().err
    assert "internal error in the scheduler" in err
    assert "hpcdist: rank 1: the in-process world was aborted" in err  # the rank named once
