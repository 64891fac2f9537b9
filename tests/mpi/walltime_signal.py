"""SIGUSR1 (the walltime warning) reaches every rank: workers survive it, rank 0 records it."""
import os
import signal
import time

import hpcdist

with hpcdist.Client() as client:
    pids = {r: client.submit(os.getpid, workers=[r], pure=False).result() for r in client.workers}
    for pid in pids.values():
        os.kill(pid, signal.SIGUSR1)
    os.kill(os.getpid(), signal.SIGUSR1)
    assert client.walltime_warning.wait(5)
    time.sleep(0.2)
    results = client.gather(client.map(abs, [-1, -2, -3], pure=False))
print(f"after warning: {results} warned={client.walltime_warning.is_set()}", flush=True)
