"""Rounds of tiny tasks in one world: rank 0's and the workers' per-key tables after each round.

Run as ``python memory_rounds.py BACKEND N ROUNDS K [drop]`` (under ``mpiexec -n 4`` for mpi);
with ``drop`` the futures are dropped right after ``map``, before their results came. Prints
one ``ROUND {json}`` line per round and ``OK`` at the end; exits 1 on the first table that is
not O(live keys). Used by tests/runtime/test_memory_client.py.
"""

import collections
import gc
import json
import sys
import time

from hpcdist import Client
from hpcdist.runtime.scheduling import state as st
from hpcdist.runtime.scheduling.vocabulary import Free
from hpcdist.runtime.client import table_sizes

BOUNDED = {"durations", "log"}


def noop(x):
    return x


def worker_tables(_=None):
    """Per-key tables of the worker running this task (found among the live objects)."""
    from hpcdist.runtime.running import current_rank
    from hpcdist.runtime.worker import Worker

    rank = current_rank()
    for obj in gc.get_objects():
        if isinstance(obj, Worker) and obj.rank == rank:
            return {name: len(getattr(obj, name)) for name in
                    ("data", "fetching", "waiters", "requested", "peer_waits", "fetched", "runq", "_done")}
    raise RuntimeError(f"no Worker object for rank {rank}")


def settled(client, want, timeout=20.0):
    """Table sizes once releases have reached the scheduler (they travel at the end of its rounds)."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        sizes = {k: v for k, v in table_sizes(client).items() if k not in BOUNDED}
        if all(v <= want for v in sizes.values()) or time.monotonic() > deadline:
            return sizes
        client.submit(noop, 0, pure=False).result()  # a round trip: the scheduler rings its doorbells
        time.sleep(0.05)


def idle(client, timeout=60.0):
    """Wait until no worker has a task queued or a report unsent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fs = [client.submit(worker_tables, i, workers=[w], pure=False) for i, w in enumerate(client.workers)]
        if all(t["runq"] == 0 and t["_done"] == 0 for t in client.gather(fs)):
            return
        time.sleep(0.05)


def main():
    backend, n, rounds, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    drop = sys.argv[5:] == ["drop"]
    counts = collections.Counter()
    apply = st.SchedulerState._apply

    def counting(self, steps):
        out = apply(self, steps)
        for ins in out:
            counts[type(ins).__name__.lower()] += 1
            if type(ins) is Free:
                counts["freed keys"] += len(ins.keys)
        return out

    st.SchedulerState._apply = counting  # rank 0 only needs it; harmless elsewhere
    with Client(backend=None if backend == "mpi" else backend, workers=3) as c:
        bad = []
        kept = []
        for r in range(rounds):
            counts.clear()
            futures = c.map(noop, range(n))
            if drop:
                del futures
                futures = []
                idle(c)  # the late results of the released keys have all arrived
            else:
                assert c.gather(futures) == list(range(n))
            kept = futures[:k] if r == rounds - 1 else []  # the last round keeps K futures
            del futures
            want = len(kept)
            sizes = settled(c, want)
            done = dict(counts)
            workers = [c.submit(worker_tables, i, workers=[w], pure=False) for i, w in enumerate(c.workers)]
            wsizes = c.gather(workers)
            del workers
            print("ROUND " + json.dumps({"round": r, "live": want, "rank0": sizes, "workers": wsizes,
                                         "instructions": done}), flush=True)
            over = {name: v for name, v in sizes.items() if v > want}
            wover = [{name: v for name, v in w.items() if v > want + 1} for w in wsizes]
            if over or any(wover):
                bad.append((r, over, wover))
        if bad:
            print("NOT O(live keys):", bad, flush=True)
            sys.exit(1)
    print("OK", flush=True)


if __name__ == "__main__":
    main()
