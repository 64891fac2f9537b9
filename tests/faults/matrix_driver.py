"""The fault matrix's driver (tests/faults/test_fault_matrix.py), run on rank 0 by ``hpcdist exec``:
``matrix_driver.py DEATH STATE[,STATE...] TMPDIR``.

For each worker state in turn (``running``: dies inside a task; ``only_copy``: dies holding the
only copy of an input still needed; ``idle``: dies between tasks) a different worker rank
(1, 2, ...) dies by DEATH (``exit``: ``os._exit(3)``; ``SIGKILL``; ``SIGSEGV``), writing
``TMPDIR/died-STATE`` first; the driver checks the results and prints ``state STATE ok``, and at the
end ``lost: [ranks]`` and ``driver done``.
"""

import os
import signal
import sys
import threading
import time

import hpcdist

DEATH, STATES, TMP = sys.argv[1], sys.argv[2].split(","), sys.argv[3]


def die(state):
    """End this worker process by DEATH, noting the time first."""
    with open(os.path.join(TMP, f"died-{state}"), "w") as fh:
        fh.write(f"{time.time()}\n")
    sys.stdout.flush()
    sys.stderr.flush()
    if DEATH == "exit":
        os._exit(3)
    os.kill(os.getpid(), getattr(signal, DEATH))
    time.sleep(60)


def times10_or_die(state, x):
    """``x * 10``; the first call anywhere ends its worker instead."""
    marker = os.path.join(TMP, f"died-{state}")
    if not os.path.exists(marker):
        die(state)
    time.sleep(0.02)
    return x * 10


def die_soon(state, delay):
    """Return at once; this worker dies ``delay`` s later, idle."""
    threading.Timer(delay, die, (state,)).start()
    return os.getpid()


def make(n):
    return list(range(n))


def total(values):
    return sum(values)


def times10(x):
    return x * 10


def wait_lost(client, rank, within=30.0):
    end = time.monotonic() + within
    while rank not in client.lost_workers and time.monotonic() < end:
        time.sleep(0.02)
    assert rank in client.lost_workers, f"rank {rank} never declared lost"


def main():
    with hpcdist.Client() as client:
        for index, state in enumerate(STATES):
            rank = index + 1
            if state == "running":
                futs = [client.submit(times10_or_die, state, i, key=f"running-{i}", workers=[rank],
                                      allow_other_workers=True) for i in range(4)]
                got = [f.result(timeout=60) for f in futs]
                assert got == [i * 10 for i in range(4)], got
            elif state == "only_copy":
                x = client.submit(make, 1000, key="only-copy-input", workers=[rank], allow_other_workers=True)
                hpcdist.wait([x], timeout=30)
                client.submit(die_soon, state, 0.2, workers=[rank], key="only-copy-bye").result(timeout=30)
                wait_lost(client, rank)
                assert client.submit(total, x, key="only-copy-total").result(timeout=60) == 499500
            elif state == "idle":
                client.submit(die_soon, state, 0.2, workers=[rank], key="idle-bye").result(timeout=30)
                wait_lost(client, rank)
                got = client.gather(client.map(times10, range(8), key=[f"idle-{i}" for i in range(8)]))
                assert got == [i * 10 for i in range(8)], got
            else:
                raise SystemExit(f"unknown state {state}")
            print(f"state {state} ok", flush=True)
        print(f"lost: {sorted(client.lost_workers)}", flush=True)
    print("driver done", flush=True)


main()
