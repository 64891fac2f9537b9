"""A fault inside hpcdist's own loops (not in a task) fails every pending future with a clear error.

Faults are injected into a live world: on rank 0 by patching the scheduler or transport object,
on a worker by a task that patches the Worker object it runs in (so it works on every backend).
Each test starts its own world, since a world with a broken loop is taken down.
"""

from __future__ import annotations

import gc
import os
import textwrap
import time

import pytest

import hpcdist
from hpcdist.errors import HpcdistError, TransportError
from hpcdist.runtime.scheduling.vocabulary import Memory

BACKENDS = ["thread", "process"]


def slow(seconds):
    time.sleep(seconds)
    return seconds


def _boom(*args, **kwargs):
    raise RuntimeError("injected fault")


def _this_worker():
    from hpcdist.runtime.running import current_rank
    from hpcdist.runtime.worker import Worker

    return next(o for o in gc.get_objects()
                if isinstance(o, Worker) and o.rank == current_rank() and not o.stopped)


def break_worker_receiving():
    """Every later message this worker receives makes its receiving loop fail."""
    w = _this_worker()
    for kind in list(w._handlers):
        w._handlers[kind] = _boom
    return "broken"


def break_worker_reports():
    """The worker's executor loop fails when it reports the next task's end."""
    w = _this_worker()
    send = w.transport.send

    def send_then_fail(dest, header, buffers=()):
        if header[0] in ("done", "failed"):
            raise RuntimeError("injected fault in the executor's report")
        return send(dest, header, buffers)

    w.transport.send = send_then_fail
    return "broken"


def _inject_rank0(client, where):
    scheduler = client._world.scheduler
    if where == "scheduler-round":
        scheduler._on_done = _boom
    elif where == "client-notification":
        listener = client._on_instruction

        def fail_on_memory(ins):
            if type(ins) is Memory:
                raise RuntimeError("injected fault in a notification")
            listener(ins)

        client._world.unlisten(listener)
        client._world.listen(fail_on_memory)
    elif where in ("transport-error", "transport-bug"):
        transport = client._world.transport
        recv = transport.recv
        exc_type = TransportError if where == "transport-error" else RuntimeError

        def failing_recv(timeout):
            item = recv(timeout)
            if item is not None and item[1][0] == "done":
                raise exc_type("injected fault in recv")
            return item

        transport.recv = failing_recv
    else:
        raise AssertionError(where)


RANK0 = ["scheduler-round", "client-notification", "transport-error", "transport-bug"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("where", RANK0)
def test_rank0_loop_fault_fails_pending_futures(backend, where):
    client = hpcdist.Client(backend=backend, workers=2)
    try:
        assert client.submit(slow, 0, pure=False).result(timeout=30) == 0
        _inject_rank0(client, where)
        pending = [client.submit(slow, 0.2, pure=False) for _ in range(4)]
        for fut in pending:
            with pytest.raises(HpcdistError):  # WorkerLost for a transport error, else internal error
                fut.result(timeout=30)  # a TimeoutError here is the hang this test guards against
        with pytest.raises(HpcdistError):
            client.submit(slow, 0, pure=False).result(timeout=30)
    finally:
        client.close()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("breaker", [break_worker_receiving, break_worker_reports], ids=["receiving", "executor"])
def test_worker_loop_fault_fails_pending_futures(backend, breaker):
    client = hpcdist.Client(backend=backend, workers=1)
    try:
        first = client.submit(breaker, pure=False)
        if breaker is break_worker_receiving:  # the next message it receives fails
            assert first.result(timeout=30) == "broken"
            pending = [client.submit(slow, 0.1, pure=False) for _ in range(3)]
        else:  # its own report is the first to fail: queue the others behind it (one worker)
            pending = [first] + [client.submit(slow, 0.1, pure=False) for _ in range(3)]
        for fut in pending:
            with pytest.raises(HpcdistError):
                fut.result(timeout=30)
    finally:
        client.close()


@pytest.mark.mpi
@pytest.mark.parametrize("where", ["scheduler-round", "worker-receiving", "worker-executor"])
def test_mpi_loop_fault_ends_the_job(tmp_path, where):
    """Under MPI a broken loop aborts the job (no hang), saying it was an internal error."""
    from mpiutil import run_mpi

    script = tmp_path / "fault.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import hpcdist
        from test_loop_faults import break_worker_receiving, break_worker_reports, slow, _inject_rank0
        c = hpcdist.Client()
        where = {where!r}
        if where == "scheduler-round":
            _inject_rank0(c, where)
        else:
            breaker = break_worker_receiving if where == "worker-receiving" else break_worker_reports
            c.submit(breaker, pure=False, workers=[1]).exception(timeout=30)
        futs = [c.submit(slow, 0.1, pure=False, workers=[1]) for _ in range(3)]
        try:
            [f.result(timeout=30) for f in futs]
        except Exception as exc:
            print("driver saw", type(exc).__name__, flush=True)
            raise
        print("no fault seen", flush=True)
    """))
    start = time.monotonic()
    proc = run_mpi(script, 3, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "internal error" in out and "injected fault" in out, out
    assert "APPLICATION TIMED OUT" not in out and "no fault seen" not in out
    assert time.monotonic() - start < 50, out  # a hang check: the job timed out otherwise
