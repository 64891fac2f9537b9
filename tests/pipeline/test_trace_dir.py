"""A pipeline's run directory holds its trace (RUN_DIR/trace), which `hpcdist report` reads; `trace: false` records none."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_run import TIMEOUT, manifest, run

from hpcdist.trace.chrome import load_sessions
from hpcdist.trace.format import RUN


@pytest.mark.parametrize("backend", [("--backend", "thread", "--workers", "2"),
                                     ("--backend", "process", "--workers", "2"),
                                     pytest.param(("-n", "3", "--timeout", str(TIMEOUT)), marks=pytest.mark.mpi)],
                         ids=["thread", "process", "mpi"])
def test_every_task_of_a_pipeline_is_in_its_run_directorys_trace(project, backend) -> None:
    code, _, err, run_dir = run(project(), *backend)
    assert code == 0, err
    runs = [e for s in load_sessions(run_dir / "trace") for e in s.events if e[0] == RUN]
    tasks = manifest(run_dir)["tasks"]
    # each task ran once (the manifest's key, as the worker saw it, carries the attempt)
    assert sorted(e[3].split("~")[0] for e in runs) == sorted(t["key"] for t in tasks.values())
    proc = subprocess.run([sys.executable, "-m", "hpcdist", "report", str(run_dir)], capture_output=True, text=True,
                          timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run_dir / "report.json").read_text())["summary"]["tasks"] == len(tasks)


def test_trace_false_records_no_trace(project, tmp_path: Path) -> None:
    spec = project()
    spec.write_text(spec.read_text() + "trace: false\n")
    code, _, err, run_dir = run(spec, "--backend", "thread", "--workers", "2")
    assert code == 0, err
    assert not (run_dir / "trace").exists() or not any((run_dir / "trace").iterdir())
