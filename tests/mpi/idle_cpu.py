"""The driver sleeps; every rank reports the CPU seconds it used meanwhile."""
import os
import time

import hpcdist


def cpu_seconds():
    t = os.times()
    return t.user + t.system


with hpcdist.Client() as client:
    ranks = sorted(client.workers)
    before = {r: client.submit(cpu_seconds, workers=[r], pure=False).result() for r in ranks}
    own = cpu_seconds()
    time.sleep(3.0)
    own = cpu_seconds() - own
    after = {r: client.submit(cpu_seconds, workers=[r], pure=False).result() for r in ranks}
for r in ranks:
    print(f"rank {r} idle cpu {100 * (after[r] - before[r]) / 3.0:.1f}%", flush=True)
print(f"rank 0 idle cpu {100 * own / 3.0:.1f}%", flush=True)
