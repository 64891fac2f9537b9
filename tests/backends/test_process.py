"""The process backend: real worker processes connected by the pipe transport."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

import hpcdist
from hpcdist.backends.process import spawn_world
from hpcdist.transports.base import PEER_LOST


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_workers_are_separate_processes_that_exit_cleanly():
    client = hpcdist.Client(backend="process", workers=2)
    pids = {info["pid"] for info in client._world.info.values()}
    assert len(pids) == 2 and os.getpid() not in pids
    procs = client._world.transport.processes
    client.close()
    assert [p.returncode for p in procs.values()] == [0, 0]  # a normal interpreter exit


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads CPU time from /proc (Linux)")
def test_idle_workers_do_not_spin():
    with hpcdist.Client(backend="process", workers=2) as client:
        assert client.submit(sum, [1, 2]).result(timeout=10) == 3
        pids = [info["pid"] for info in client._world.info.values()]
        before = [proc_cpu_seconds(p) for p in pids]
        time.sleep(1.0)
        after = [proc_cpu_seconds(p) for p in pids]
    assert max(b - a for a, b in zip(before, after)) < 0.05  # < 5 % of a core while idle


def test_dependencies_travel_worker_to_worker_not_via_rank_0():
    with hpcdist.Client(backend="process", workers=2) as client:
        ranks = sorted(client.workers)
        [arr] = client.scatter([np.arange(2_000_000, dtype=np.float64)], workers=[ranks[0]])
        assert client.who_has([arr])[arr.key] == ranks[:1]  # the scatter has gone out (in order)
        sched = client._world.scheduler
        before = sched.bytes_in + sched.bytes_out
        moved = client.submit(np.sum, arr, workers=[ranks[1]])
        assert moved.result(timeout=20) == float(np.arange(2_000_000).sum())
        assert client.who_has([arr])[arr.key] == ranks  # rank 2 fetched its copy from rank 1
        assert sched.bytes_in + sched.bytes_out - before < 100_000  # the 16 MB never went through rank 0


def test_a_worker_that_dies_is_named(capfd):
    transport, join = spawn_world(2)
    try:
        hello = [transport.recv(30) for _ in range(2)]
        assert sorted(src for src, _, _ in hello) == [1, 2]
        transport.processes[2].kill()
        src, header, _ = transport.recv(10)  # an event, not an error: rank 0 goes on
        assert (src, header[0]) == (2, PEER_LOST)
        assert re.search(r"worker rank 2 \(pid \d+, killed by signal 9\)", header[1]), header
        transport.send(2, ("to the dead",))  # dropped
        assert transport.recv(0.2) is None
    finally:
        transport.abort(1)
        join()
    assert all(p.returncode is not None for p in transport.processes.values())  # no orphan


def test_unguarded_script_with_top_level_client(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import hpcdist\n"
        "client = hpcdist.Client(backend='process', workers=2)\n"
        "print('result', sum(client.gather(client.map(abs, [-1, -2, -3]))), client.backend)\n"
        "client.close()\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("result 6 process") == 1  # workers never re-ran the script


def _kill_own_process(code):
    import os

    os._exit(code)


def test_the_last_dead_worker_fails_pending_futures_instead_of_hanging():
    import time

    from hpcdist.errors import WorkerLost

    client = hpcdist.Client(backend="process", workers=1)
    try:
        fatal = client.submit(_kill_own_process, 3, pure=False)
        waiting = client.submit(time.sleep, 30, pure=False)
        with pytest.raises(WorkerLost, match="died|lost"):
            fatal.result(timeout=30)
        with pytest.raises(WorkerLost):
            waiting.result(timeout=30)
        with pytest.raises(WorkerLost):
            client.submit(abs, -1)
    finally:
        start = time.monotonic()
        client.close()
        assert time.monotonic() - start < 15
