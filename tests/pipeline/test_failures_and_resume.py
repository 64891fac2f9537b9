"""What a run keeps and what a resume trusts: full tracebacks, code-aware keys, verified bytes,
progress.json, and a full disk."""

from __future__ import annotations

import datetime
import errno
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpcdist.exitcodes import ExitCode
from test_run import TIMEOUT, digest, manifest, run, start, statuses

HELPERS = """\
def helper(x):
    return x + 1

def deeper(x, n):
    if n == 0:
        raise KeyError(f"deep {x}")
    return deeper(x, n - 1)
"""

FAILING = """\
def direct(x):
    raise ValueError(f"boom {x}")

def nested(x):
    import helpers
    return helpers.deeper(x, 5)

def uses_helper(x):
    import helpers
    return helpers.helper(x)

def plain(x):
    return x * 2

def total(xs):
    return sum(xs)
"""


@pytest.fixture
def failing(project, tmp_path):
    project()
    (tmp_path / "helpers.py").write_text(HELPERS)
    (tmp_path / "flib.py").write_text(FAILING)
    for name in ("helpers", "flib"):
        sys.modules.pop(name, None)

    def write(body: str, name: str = "job.yaml") -> Path:
        return project(body.replace("call: ", "call: flib:"), name)

    return write


FAIL_BODY = """\
    tasks:
      direct: {call: direct, map: [1, 2]}
      nested: {call: nested, args: [7]}
      fine: {call: plain, args: [3]}
    """

# (task id, exception line, a frame the traceback must show)
FAILURES = [("direct[0]", "ValueError: boom 1", "in direct"), ("direct[1]", "ValueError: boom 2", "in direct"),
            ("nested", "KeyError: 'deep 7'", "in deeper")]


@pytest.mark.parametrize("launch", [("--backend", "thread", "--workers", "2"),
                                    ("--backend", "process", "--workers", "2"),
                                    pytest.param(("-n", "3", "--timeout", str(TIMEOUT)), marks=pytest.mark.mpi)],
                         ids=["thread", "process", "mpi"])
def test_a_failed_task_keeps_its_full_traceback_everywhere(failing, tmp_path, launch) -> None:
    code, out, err, run_dir = run(failing(FAIL_BODY), *launch)
    assert code == ExitCode.TASKS_FAILED, err
    m = manifest(run_dir)
    rank0 = (run_dir / "logs/rank-0.log").read_text()
    workers = "".join(p.read_text() for p in (run_dir / "logs").glob("worker-*.log"))
    for tid, last, frame in FAILURES:
        trace = m["tasks"][tid]["traceback"]
        assert trace.rstrip().endswith(last) and frame in trace and str(tmp_path / "flib.py") in trace, trace
        assert "Traceback (most recent call last)" in trace and "rank" in trace.splitlines()[0]
        assert trace.strip() in rank0.replace("\n    ", "\n").strip() or all(
            line in rank0 for line in trace.splitlines()), tid
        assert last in workers and frame in workers
        path = run_dir / "logs" / "tracebacks" / (tid.replace("[", ".").replace("]", "") + ".txt")
        assert path.read_text() == trace
        # the console: the error, the last lines of the traceback, and where the rest is
        assert f"task {tid} failed: {last}" in err
        assert f"full traceback ({len(trace.rstrip().splitlines())} lines): {path}" in err
    assert "in deeper" in err and "hpcdist:   | KeyError: 'deep 7'" in err
    assert "traceback" not in m["tasks"]["fine"] and m["tasks"]["fine"]["status"] == "done"


RESUME_BODY = """\
    tasks:
      a: {call: uses_helper, map: [1, 2, 3]}
      b: {call: plain, map: [1, 2]}
      s: {call: total, args: [{ref: a}]}
    save: [s, b]
    """

# what is edited between the run and the resume -> the task names that must run again
EDITS = {
    "helper_in_other_module": (lambda d: _edit(d / "helpers.py", "x + 1", "x + 100"), {"a", "s"}),
    "task_module_other_function": (lambda d: _edit(d / "flib.py", "return x * 2", "return x * 3"), {"b"}),
    "nothing": (lambda d: None, set()),
    "unrelated_function": (lambda d: _edit(d / "flib.py", "deeper(x, 5)", "deeper(x, 6)"), set()),
    # a module imported inside the task, not on rank 0: its whole file counts (docs/pipelines.md)
    "locally_imported_module": (lambda d: _edit(d / "helpers.py", 'f"deep {x}"', 'f"deeper {x}"'), {"a", "s"}),
}


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    os.utime(path, (time.time() + 2, time.time() + 2))  # a new mtime even within one second


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_resume_recomputes_exactly_the_tasks_whose_reachable_code_changed(failing, tmp_path, edit) -> None:
    spec = failing(RESUME_BODY)
    code, out, err, run_dir = run(spec, "--backend", "thread", "--workers", "2")
    assert code == 0, err
    change, rerun = EDITS[edit]
    change(tmp_path)
    code, out, err, _ = run(spec, "--backend", "thread", "--workers", "2", "--resume", str(run_dir))
    assert code == 0, err
    st = statuses(run_dir)
    again = {tid.split("[")[0] for tid, s in st.items() if s == "done"}
    assert again == rerun, st
    assert {s for s in st.values()} <= {"done", "cached"}
    log = (run_dir / "logs/rank-0.log").read_text()
    assert "a: the key covers function flib:uses_helper, module helpers" in log  # what is hashed, logged
    fresh = run(spec, "--backend", "thread", "--workers", "2")
    assert digest(out) == digest(fresh[1])  # the resumed result is the one a fresh run gives


def test_the_version_field_forces_a_recompute(failing) -> None:
    spec = failing(RESUME_BODY)
    code, _, err, run_dir = run(spec, "--backend", "thread", "--workers", "1")
    assert code == 0, err
    code, _, err, _ = run(spec, "--backend", "thread", "--workers", "1", "--resume", str(run_dir),
                          "--set", "program.pipeline.tasks.b.version=2")
    assert code == 0, err
    st = statuses(run_dir)
    assert {t for t, s in st.items() if s == "done"} == {"b[0]", "b[1]"}


def test_version_must_be_a_string_or_an_integer(failing) -> None:
    spec = failing(RESUME_BODY.replace("{call: plain, map: [1, 2]}", "{call: plain, map: [1, 2], version: [1]}"))
    proc = subprocess.run([sys.executable, "-m", "hpcdist", "validate", str(spec)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "version" in proc.stderr and "job.yaml:" in proc.stderr


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-2] = ord("7") if data[-2] != ord("7") else ord("8")  # same size, other bytes
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1])


def _drop_sha(path: Path) -> None:
    meta_path = path.with_name(path.name.rsplit(".", 1)[0] + ".meta.json")
    meta = json.loads(meta_path.read_text())
    del meta["sha256"]
    meta_path.write_text(json.dumps(meta))


def _bad_meta(path: Path) -> None:
    path.with_name(path.name.rsplit(".", 1)[0] + ".meta.json").write_text("{not json")


@pytest.mark.parametrize("tamper", [_flip, _truncate, _drop_sha, _bad_meta], ids=lambda f: f.__name__.strip("_"))
def test_resume_recomputes_a_stored_result_whose_bytes_do_not_match(failing, tamper) -> None:
    spec = failing(RESUME_BODY)
    code, out, err, run_dir = run(spec, "--backend", "thread", "--workers", "2")
    assert code == 0, err
    reference = digest(out)
    m = manifest(run_dir)
    victim = run_dir / "objects" / m["tasks"]["b[1]"]["output"]
    tamper(victim)
    code, out, err, _ = run(spec, "--backend", "thread", "--workers", "2", "--resume", str(run_dir))
    assert code == 0, err
    st = statuses(run_dir)
    assert st["b[1]"] == "done" and st["b[0]"] == "cached" and st["s"] == "cached"
    assert digest(out) == reference
    assert json.loads(victim.read_text()) == 4


NAPS = """\
    tasks:
      naps: {call: nap, map: [0, 1, 2, 3, 4, 5, 6, 7], kwargs: {seconds: 0.3}}
      bad: {call: boom, args: [1]}
      sum: {call: total, args: [{ref: naps}]}
    """


@pytest.mark.parametrize("launch", [("--backend", "thread", "--workers", "2"),
                                    pytest.param(("-n", "3", "--timeout", str(TIMEOUT)), marks=pytest.mark.mpi)],
                         ids=["thread", "mpi"])
def test_progress_json_is_written_while_running_and_at_the_end(project, launch) -> None:
    spec = project(NAPS)
    proc = start(spec, *launch)
    seen = []
    deadline = time.monotonic() + TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        for path in spec.parent.glob("runs/*/progress.json"):
            seen.append(json.loads(path.read_text()))  # whole every time: written by rename
        time.sleep(0.05)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == ExitCode.TASKS_FAILED, err
    run_dir = Path(re.search(r"run directory: (\S+)", out).group(1))
    final = json.loads((run_dir / "progress.json").read_text())
    assert seen and seen[0]["done"] < 8  # one written before the end
    for doc in seen + [final]:
        assert set(doc) == {"done", "failed", "running", "total", "updated"}
        assert all(type(doc[k]) is int for k in ("done", "failed", "running", "total"))
        stamp = datetime.datetime.strptime(doc["updated"], "%Y-%m-%dT%H:%M:%SZ")
        assert abs(stamp.replace(tzinfo=datetime.timezone.utc).timestamp() - time.time()) < TIMEOUT + 60
    assert final == {**final, "done": 9, "failed": 1, "running": 0, "total": 10}  # 8 naps and sum
    assert not list(run_dir.glob(".progress.json.*"))


def _no_temporaries(run_dir: Path) -> list[str]:
    return [str(p) for p in run_dir.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".outputs-")]


def test_disk_full_while_copying_the_outputs(project, monkeypatch, capsys) -> None:
    from hpcdist.pipeline import rundir
    from hpcdist.pipeline.run import run_spec

    spec = project()
    real = rundir.shutil.copyfile
    calls = []

    def copyfile(src, dst, *a, **kw):
        calls.append(dst)
        if len(calls) == 3:  # part of the outputs copied, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real(src, dst, *a, **kw)

    monkeypatch.setattr(rundir.shutil, "copyfile", copyfile)
    monkeypatch.chdir(spec.parent)
    code = run_spec(str(spec), backend="thread", workers=2)
    out, err = capsys.readouterr()
    assert code == ExitCode.IO_ERROR == 74
    run_dir = Path(re.search(r"run directory: (\S+)", out).group(1))
    m = manifest(run_dir)
    assert m["final"] and m["exit_status"] == ExitCode.IO_ERROR
    assert "Traceback" not in err and "hpcdist: error: the outputs could not be copied" in err
    assert "No space left on device" in err
    assert _no_temporaries(run_dir) == [] and not (run_dir / "outputs").exists()
    assert not (run_dir / "output_hash").exists()


TMPFS_BODY = """\
    tasks:
      small: {call: square, map: [1, 2, 3]}
      big: {call: arrays, args: [2], kwargs: {n: 400000}, after: [small]}
      later: {call: square, map: [4, 5, 6], after: [big]}
    save: [small, big, later]
    """


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs (needs root: mount). The run directory goes there."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; test_disk_full_while_copying_the_outputs covers the seam")
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True, timeout=30)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)


@pytest.mark.parametrize("launch", [("--backend", "process", "--workers", "2"),
                                    pytest.param(("-n", "3", "--timeout", str(TIMEOUT)), marks=pytest.mark.mpi)],
                         ids=["process", "mpi"])
def test_disk_full_while_storing_a_result_on_a_real_full_file_system(project, tiny_disk, launch) -> None:
    spec = project(TMPFS_BODY)
    run_dir = tiny_disk / "run"
    code, out, err, _ = run(spec, *launch, "--run-dir", str(run_dir))
    assert code == ExitCode.IO_ERROR, err
    assert "Traceback" not in err and "No space left on device" in err and "hpcdist: error: big:" in err
    m = manifest(run_dir)
    assert m["final"] and m["exit_status"] == ExitCode.IO_ERROR and m["reason"] == "disk_full"
    st = statuses(run_dir)
    assert st["big"] == "failed" and all(st[f"small[{i}]"] == "done" for i in range(3))
    assert all(st[f"later[{i}]"] in ("skipped", "not_run") for i in range(3))
    assert _no_temporaries(run_dir) == []
