"""The traced run the report's tests look at: 100 ``inc`` and 100 ``add`` of two of them, on 2 workers."""

from __future__ import annotations

import os
from pathlib import Path

import hpcdist

N = 100


def inc(x):
    return x + 1


def add(a, b):
    return a + b


def traced_run(run_dir: Path, backend: str = "process") -> set[str]:
    """Run the workload with its trace in ``run_dir/trace``; the keys of its tasks."""
    saved = {k: os.environ.get(k) for k in ("HPCDIST_TRACE_DIR", "HPCDIST_TRACE")}
    os.environ["HPCDIST_TRACE_DIR"] = str(run_dir / "trace")
    os.environ.pop("HPCDIST_TRACE", None)
    try:
        with hpcdist.Client(backend=backend, workers=2) as client:
            firsts = client.map(inc, range(N))
            seconds = [client.submit(add, firsts[i], firsts[-1 - i]) for i in range(N)]
            assert sum(f.result() for f in seconds) == 10100
            return {f.key for f in firsts + seconds}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
