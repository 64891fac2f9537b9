"""A worker (or rank 0) dies under `mpiexec -disable-auto-cleanup`; the run goes on (see
tests/backends/test_mpi_loss.py). ``python loss_driver.py MODE TMPDIR``; rank 0 prints
``lost: {rank: reason}`` and, once its world closed, ``driver done``."""

import os
import signal
import sys
import threading
import time

import numpy as np

import hpcdist

MODE, TMP = sys.argv[1], sys.argv[2]


def rank():
    return int(os.environ.get("PMI_RANK") or os.environ.get("OMPI_COMM_WORLD_RANK", "-1"))


def die_on_2(marker, x):
    """``x * 10``; the first one to run on rank 2 ends its process first."""
    if rank() == 2 and not os.path.exists(marker):
        open(marker, "w").close()
        if os.environ.get("LOSS_HOW") == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(3)
    time.sleep(0.05)
    return x * 10


def times10(x):
    return x * 10


def exit_soon(delay):
    """Return this worker's pid; its process exits (status 3) ``delay`` s later, idle."""
    threading.Timer(delay, os._exit, (3,)).start()
    return os.getpid()


def pid():
    return os.getpid()


def make(log, n):
    """A large array (stays on the worker); each run appends a line to ``log``."""
    with open(log, "a") as fh:
        fh.write(f"{rank()}\n")
    return np.arange(n, dtype=np.int64)


def total(a):
    return int(a.sum())


def busy_numpy(seconds, x):
    """CPU-bound with the GIL held: many short numpy operations."""
    a = np.random.default_rng(x).random(64)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        a = np.sort(a + 1e-9)
    return x * 10


def busy_python(seconds, x):
    """CPU-bound, pure Python."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        for _ in range(1000):
            n += 1
    return x * 10


def break_receiving():
    """This worker's receiving loop fails at its next message (a fault in hpcdist's own loop)."""
    import gc

    from hpcdist.runtime.worker import Worker

    def boom(*args):
        raise RuntimeError("injected fault")

    w = next(o for o in gc.get_objects() if isinstance(o, Worker) and not o.stopped)
    for kind in list(w._handlers):
        w._handlers[kind] = boom
    return os.getpid()


def wait_lost(client, ranks, within=30.0):
    end = time.monotonic() + within
    while not set(ranks) <= set(client.lost_workers) and time.monotonic() < end:
        time.sleep(0.05)


def main():
    with hpcdist.Client(backend="mpi") as client:
        if MODE == "task_exit":
            marker = os.path.join(TMP, "died")
            futs = [client.submit(die_on_2, marker, i, key=f"t{i}", workers=[2], allow_other_workers=True)
                    for i in range(6)]
            futs += [client.submit(die_on_2, marker, i, key=f"u{i}") for i in range(6, 12)]
            got = [f.result(timeout=60) for f in futs]
            assert got == [i * 10 for i in range(12)], got
            assert os.path.exists(marker)
        elif MODE == "idle_exit":
            client.submit(exit_soon, 0.2, workers=[3], key="bye").result(timeout=30)
            wait_lost(client, [3])
            got = client.gather(client.map(times10, range(8)))
            assert got == [i * 10 for i in range(8)], got
        elif MODE == "only_copy":
            log = os.path.join(TMP, "make.log")
            x = client.submit(make, log, 1 << 18, key="x", workers=[2], allow_other_workers=True)
            hpcdist.wait([x], timeout=30)
            client.submit(exit_soon, 0.2, workers=[2], key="bye").result(timeout=30)
            wait_lost(client, [2])
            y = client.submit(total, x, key="y")
            assert y.result(timeout=60) == (1 << 18) * ((1 << 18) - 1) // 2
            with open(log) as fh:
                runs = fh.read().split()
            print(f"make ran on ranks {runs}", flush=True)
            assert len(runs) == 2 and runs[0] == "2" and runs[1] != "2", runs
        elif MODE == "busy":
            futs = []
            for i in range(6):
                fn = busy_numpy if i % 2 else busy_python
                futs.append(client.submit(fn, float(os.environ.get("BUSY_S", 3)) + (i % 3), i, key=f"busy{i}", workers=[1 + i % 3]))
            got = [f.result(timeout=120) for f in futs]
            assert got == [i * 10 for i in range(6)], got
            assert not client.lost_workers, client.lost_workers
        elif MODE == "sigstop":
            target = client.submit(pid, workers=[2], key="pid").result(timeout=30)
            os.kill(target, signal.SIGSTOP)
            wait_lost(client, [2])
            got = client.gather(client.map(times10, range(6)))
            assert got == [i * 10 for i in range(6)], got
            os.kill(target, signal.SIGCONT)
            end = time.monotonic() + 20
            while time.monotonic() < end and _alive(target):
                time.sleep(0.05)
            print(f"rank 2 alive after SIGCONT: {_alive(target)}", flush=True)
        elif MODE == "sigterm":  # a SIGTERM to one worker only: it waits for rank 0, then says goodbye and exits
            target = client.submit(pid, workers=[2], key="pid").result(timeout=30)
            os.kill(target, signal.SIGTERM)
            wait_lost(client, [2], within=60)
            got = client.gather(client.map(times10, range(6)))
            assert got == [i * 10 for i in range(6)], got
        elif MODE == "loop_fault":  # hpcdist's own loop fails on rank 2: it says so and leaves, the rest go on
            client.submit(break_receiving, workers=[2], key="break").result(timeout=30)
            futs = [client.submit(times10, i, key=f"t{i}", workers=[2], allow_other_workers=True) for i in range(4)]
            got = [f.result(timeout=60) for f in futs]
            assert got == [i * 10 for i in range(4)], got
        elif MODE == "leave_running":  # after a loss, the run ends while two workers still run numpy tasks
            client.submit(exit_soon, 0.2, workers=[3], key="bye").result(timeout=30)
            wait_lost(client, [3])
            client.gather(client.map(times10, range(4)))
            for i in (1, 2):
                client.submit(busy_numpy, 30.0, i, key=f"left{i}", workers=[i])
            time.sleep(0.5)
        elif MODE == "rank0_dies":
            client.submit(busy_python, 60.0, 1, key="long", workers=[1])
            client.submit(pid, workers=[2], key="p").result(timeout=30)
            print("driver: exiting without a word", flush=True)
            sys.stdout.flush()
            os._exit(5)
        print(f"lost: {dict((r, why) for r, (why, _) in client.lost_workers.items())}", flush=True)
    print("driver done", flush=True)


def _alive(p):
    try:
        with open(f"/proc/{p}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] not in ("Z", "X")
    except OSError:
        return False


main()
