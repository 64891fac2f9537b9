"""Serving as a worker: the executor and the communication thread, shutdown and exit."""

from __future__ import annotations

import sys
import threading
from typing import Any

from hpcdist.runtime import goodbye, tracing
from hpcdist.runtime.log import get_logger
from hpcdist.runtime.running import end_process, report_loop_failure
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
            MPI and ends the process (:func:`~hpcdist.runtime.running.end_process`) without waiting for it.

    Returns:
        The exit code the scheduler asked for at shutdown.
    """
    worker = Worker(transport, state_file=state_file)
    if exit_process:  # a worker process (MPI, process backend): its deliberate ends say why first
        goodbye.install(transport)
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
            end_process(worker.exit_code)

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
    tracing.close(worker.trace)
    executed.set()
    comm.join()
    if exit_process:
        transport.close()
        sys.exit(worker.exit_code)
    return worker.exit_code
