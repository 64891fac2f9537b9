"""Serving as a worker: the executor and the communication thread, shutdown and exit."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from hpcdist.runtime.log import get_logger
from hpcdist.runtime.running import report_loop_failure
from hpcdist.runtime.worker import Worker

logger = get_logger(__name__)

#: seconds a shut-down worker process waits for its running task before it exits anyway
SHUTDOWN_TASK_GRACE = 1.0


def run_worker(transport: Any, *, state_file: str | None = None, exit_process: bool = False) -> int:
    """Serve as a worker: this thread executes tasks, a second thread communicates.

    Args:
        transport: this worker's endpoint.
        state_file: where the executor records the task it runs (see :class:`Worker`).
        exit_process: (MPI) once shut down, close the transport and end the process with the
            exit code the scheduler asked for. A normal interpreter exit; a task still running
            after :data:`SHUTDOWN_TASK_GRACE` is abandoned: the communication thread finalizes
            MPI and ends the process (:func:`_exit_now`) without waiting for it.

    Returns:
        The exit code the scheduler asked for at shutdown.
    """
    worker = Worker(transport, state_file=state_file)
    executed = threading.Event()

    def communicate() -> None:
        try:
            worker.serve()
        except BaseException as exc:  # noqa: BLE001
            report_loop_failure(exc, transport)
            transport.abort(1)
        worker.stop()  # also after an abort: no task will ever come to the executor again
        if exit_process and not executed.wait(SHUTDOWN_TASK_GRACE):
            logger.error("hpcdist: rank %s: a task was still running at shutdown; abandoned it after %g s, exiting",
                         transport.rank, SHUTDOWN_TASK_GRACE)
            transport.close()
            sys.stdout.flush()
            sys.stderr.flush()
            _exit_now(worker.exit_code)

    comm = threading.Thread(target=communicate, name="hpcdist-comm", daemon=True)
    comm.start()
    try:
        worker.execute()
    except BaseException as exc:  # noqa: BLE001 - hpcdist's own executor loop failed (not a task)
        if isinstance(exc, KeyboardInterrupt):
            raise
        report_loop_failure(exc, transport)  # the world goes down instead of leaving rank 0 waiting for a report
        worker.stop()
        transport.abort(1)
    executed.set()
    comm.join()
    if exit_process:
        transport.close()
        sys.exit(worker.exit_code)
    return worker.exit_code


def _exit_now(code: int) -> None:
    """End the process with ``code`` while another thread still runs a task.

    The C library's ``exit`` (not ``os._exit``): it runs the MPI library's exit handlers, and
    without them Hydra kills every other rank of the job (rank 0 included, even one that is
    still working after its ``close()``). The GIL stays held (``PyDLL``), so no Python code runs
    while the process ends.
    """
    try:
        import ctypes

        ctypes.PyDLL(None).exit(code)
    except (OSError, AttributeError):  # no C library to call: end without its handlers
        pass
    os._exit(code)
