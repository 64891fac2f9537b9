"""close() (or the end of the with block) while a worker still runs a task; argv[1]: with | close | work-after."""

import os
import sys
import time

import hpcdist


def slow(seconds):
    time.sleep(seconds)
    return seconds


how = sys.argv[1]
if how == "with":
    with hpcdist.Client() as c:
        running = c.submit(slow, 60, pure=False)
        assert c.submit(slow, 0.01, pure=False).result(timeout=30) == 0.01
        time.sleep(0.3)
else:
    c = hpcdist.Client()
    running = c.submit(slow, 60, pure=False)
    assert c.submit(slow, 0.01, pure=False).result(timeout=30) == 0.01
    time.sleep(0.3)
    c.close()
if how == "work-after":
    time.sleep(3)  # rank 0 goes on after close() while the workers have exited
    with open(os.environ["CLOSE_RUNNING_MARKER"], "w") as out:
        out.write("rank 0 finished")
print("driver done", flush=True)
