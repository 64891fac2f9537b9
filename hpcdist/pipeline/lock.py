"""A run directory in use is locked against a second run (``flock`` on two files).

``RUN_DIR/.lock`` is held by the process a user started (``hpcdist run`` around mpiexec, or
the whole run on a thread/process backend); ``RUN_DIR/.lock-world`` by the process that runs
the pipeline (rank 0; in a batch job the only one). A launcher checks the second lock too, so
a run is refused while a batch job, or a world still wrapping up after its launcher was
killed, works in the directory. The kernel drops a lock when its holder dies, however it dies.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from hpcdist.errors import RunDirBusy
from hpcdist.paths import RunDir

__all__ = ["RunLock", "RunDirBusy", "LAUNCHER", "WORLD"]

LAUNCHER, WORLD = RunDir.LAUNCHER_LOCK, RunDir.WORLD_LOCK


class RunLock:
    """Holds the lock ``name`` of a run directory until :meth:`release` or the process ends."""

    def __init__(self, run_dir: Path, name: str) -> None:
        self.path = Path(run_dir) / name
        self.fd: int | None = None

    @classmethod
    def take(cls, run_dir: Path, name: str) -> RunLock:
        """Take the lock, or raise :class:`RunDirBusy` naming the holder."""
        lock = cls(run_dir, name)
        lock.acquire()
        return lock

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunDirBusy(f"{self.path.parent}: in use by another hpcdist run ({holder}); wait until it "
                             "ends, or run in another directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor drops the flock
            self.fd = None


def check_free(run_dir: Path, name: str) -> None:
    """Raise :class:`RunDirBusy` if someone holds lock ``name`` now (taken and dropped at once)."""
    RunLock.take(run_dir, name).release()
