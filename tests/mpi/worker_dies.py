"""A task kills its worker process (os._exit or a segfault): the job must end, naming task and rank."""
import ctypes
import os
import sys
import time

import hpcdist


def die(how):
    if how == "exit":
        os._exit(3)
    ctypes.string_at(0)  # segmentation fault


with hpcdist.Client() as client:
    fut = client.submit(die, sys.argv[1], key="the-fatal-task", workers=[2])
    fut.result()
    time.sleep(30)  # not reached: the job must already be gone
