"""The life of `hpcdist run`: how many ranks, the bar on a terminal, --timeout, SIGTERM to every
rank (a cancel), a task stuck in C code, SIGKILL of the launcher, and the run directory lock."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hpcdist.commands import find_mpiexec
from hpcdist.exitcodes import ExitCode
from test_run import TIMEOUT, manifest, run, start, statuses

STUCK = textwrap.dedent('''
    import ctypes, os, signal, time

    def stuck(x, marker=None):
        if x == 3:
            if marker:
                open(marker, "w").close()
            ctypes.CDLL(None).pause()  # held in C until a signal comes
            time.sleep(1000)
        time.sleep(0.2)
        return x

    def held(x, marker=None):
        if x == 3:  # like a long numpy call: no signal ever reaches this thread
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
            open(marker, "w").close()
            time.sleep(1000)
        time.sleep(0.2)
        return x

    def total(xs):
        return sum(xs)
''')

STUCK_BODY = """\
    tasks:
      items: {{call: stuck:stuck, map: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], kwargs: {{marker: "{marker}"}}}}
      sum: {{call: total, args: [{{ref: items}}]}}
    """

DRIVER = textwrap.dedent('''
    import ctypes, sys, hpcdist

    def stuck(x, marker):
        open(marker, "w").close()
        ctypes.CDLL(None).pause()
        return x

    with hpcdist.Client() as client:
        print(client.submit(stuck, 1, sys.argv[1]).result())
''')


@pytest.fixture
def stuck(project, tmp_path):
    (tmp_path / "stuck.py").write_text(STUCK)
    (tmp_path / "driver.py").write_text(DRIVER)
    marker = tmp_path / "stuck-started"
    return project(STUCK_BODY.format(marker=marker)), marker


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 40) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"ended before {path.name} appeared: {proc.communicate()}")
        assert time.monotonic() < deadline, f"{path.name} did not appear"
        time.sleep(0.05)
    time.sleep(0.3)  # the task is in pause() now


MPI = pytest.param(("-n", "3"), marks=pytest.mark.mpi, id="mpi")
PROCESS = pytest.param(("--backend", "process", "--workers", "2"), id="process")


@pytest.mark.parametrize("what", ["pipeline", "pipeline-signals-blocked", "script"])
@pytest.mark.parametrize("launch", [MPI, PROCESS])
def test_sigterm_while_a_task_is_stuck_in_c_exits_130_within_5_s(stuck, tmp_path, launch, what) -> None:
    spec, marker = stuck
    if what == "pipeline-signals-blocked":
        spec.write_text(spec.read_text().replace("call: stuck:stuck", "call: stuck:held"))
    if what.startswith("pipeline"):
        proc = start(spec, *launch, "--timeout", str(TIMEOUT))
    else:
        proc = subprocess.Popen([sys.executable, "-m", "hpcdist", "run", *launch, str(tmp_path / "driver.py"),
                                 str(marker)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL, cwd=tmp_path)
    _wait_for(marker, proc)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert took < 5.0, (took, err)
    assert "cancelled" in err and "BAD TERMINATION" not in err and "Traceback" not in err
    if what.startswith("pipeline"):
        run_dir = Path(re.search(r"run directory: (\S+)", out).group(1))
        m = manifest(run_dir)
        assert m["final"] and m["exit_status"] == ExitCode.INTERRUPTED and m["reason"] == "interrupted"


def _rank_pids(run_dir: Path) -> list[int]:
    """Every process whose command line names this run directory (the ranks, not mpiexec)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(run_dir).encode() in argv and b"hpcdist" in argv and not any(b"mpiexec" in a for a in argv[:1]):
            pids.append(int(d.name))
    return pids


@pytest.mark.mpi
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_signal_to_every_rank_at_once_ends_the_pipeline_cleanly_with_130(stuck, tmp_path, sig) -> None:
    # what scancel / qdel do to a job step: the signal reaches all ranks at the same moment
    spec, marker = stuck
    run_dir = tmp_path / "runs" / "direct"
    env = dict(os.environ, MPIEXEC_TIMEOUT=str(TIMEOUT), HPCDIST_STATE_DIR=str(run_dir / "ranks"))
    run_dir.joinpath("ranks").mkdir(parents=True)
    proc = subprocess.Popen([find_mpiexec(), "-n", "3", sys.executable, "-m", "hpcdist", "run", str(spec),
                             "--run-dir", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, stdin=subprocess.DEVNULL, cwd=tmp_path)
    _wait_for(marker, proc)
    pids = _rank_pids(run_dir)
    assert len(pids) == 3, pids
    for pid in pids:
        os.kill(pid, sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert "cancelled" in err and "BAD TERMINATION" not in err and "problem with your application" not in err
    m = manifest(run_dir)
    assert m["final"] and m["exit_status"] == ExitCode.INTERRUPTED
    assert "running" not in statuses(run_dir).values()


def test_the_postmortem_names_pipeline_tasks_by_their_pipeline_names(tmp_path) -> None:
    from hpcdist.postmortem import postmortem

    state = tmp_path / "ranks"
    state.mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps({"tasks": {
        "squares[3]": {"key": "squares-0123abcd"}, "total": {"key": "total-99"}}}))
    cases = {1: ("R squares-0123abcd~2", "rank 1 was running pipeline task squares[3] (key squares-0123abcd~2)"),
             2: ("R total-99~1", "rank 2 was running pipeline task total (key total-99~1)"),
             3: ("R unknown-key", "rank 3 was running task 'unknown-key'"),
             4: ("-", None)}
    cases = {r: (t, line and f"{line} when the job ended") for r, (t, line) in cases.items()}
    for rank, (text, _) in cases.items():
        (state / f"rank-{rank}.task").write_text(text.ljust(256))
    assert postmortem(str(state)) == [line for _, line in cases.values() if line]


@pytest.mark.mpi
@pytest.mark.parametrize("ranks, args, workers", [(2, (), 1), (4, (), 3), (4, ("-n", "2"), 1),
                                                  (2, ("--workers", "2"), 2)])
def test_the_spec_s_ranks_are_the_world_size_unless_n_says_otherwise(project, ranks, args, workers) -> None:
    spec = project()
    spec.write_text(spec.read_text().replace("resources: {ranks: 3}", f"resources: {{ranks: {ranks}}}"))
    code, out, err, run_dir = run(spec, *args, "--timeout", str(TIMEOUT))
    assert code == 0, err
    assert len(manifest(run_dir)["workers"]) == workers


@pytest.mark.mpi
def test_the_progress_bar_shows_on_a_terminal_under_mpi(project) -> None:
    spec = project("""\
        tasks:
          naps: {call: nap, map: [0, 1, 2, 3], kwargs: {seconds: 0.2}}
        """)
    master, slave = pty.openpty()
    env = dict(os.environ, MPIEXEC_TIMEOUT=str(TIMEOUT))
    proc = subprocess.Popen([sys.executable, "-m", "hpcdist", "run", str(spec), "-n", "2"],
                            stdout=subprocess.DEVNULL, stderr=slave, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(master)
    text = seen.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "\r[" in text and "100%" in text and "hpcdist: progress:" not in text, text


def test_the_bar_is_drawn_when_the_launcher_says_the_output_ends_on_a_terminal(monkeypatch) -> None:
    import io

    from hpcdist.pipeline.progress import Progress

    for env, bar in (("1", True), (None, False)):
        if env is None:
            monkeypatch.delenv("HPCDIST_TTY", raising=False)
        else:
            monkeypatch.setenv("HPCDIST_TTY", env)
        stream = io.StringIO()
        p = Progress(stream)
        p({"done": 1, "waiting": 1}, 1, 1.0)
        p.close({"done": 2}, 0, 2.0)
        assert ("\r[" in stream.getvalue()) is bar and ("hpcdist: progress:" in stream.getvalue()) is not bar


@pytest.mark.parametrize("what", ["pipeline", "script"])
@pytest.mark.parametrize("launch", [MPI, PROCESS])
def test_timeout_exits_124(stuck, tmp_path, launch, what) -> None:
    spec, marker = stuck
    target = str(spec) if what == "pipeline" else str(tmp_path / "driver.py")
    extra = [] if what == "pipeline" else [str(marker)]
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "hpcdist", "run", *launch, "--timeout", "8", target, *extra],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert proc.returncode == 124, proc.stderr
    assert time.monotonic() - t0 < 8 + 10
    assert "--timeout" in proc.stderr and "Traceback" not in proc.stderr
    if what == "pipeline":
        m = manifest(Path(re.search(r"run directory: (\S+)", proc.stdout).group(1)))
        assert m["final"] and m["reason"] == "interrupted"


@pytest.mark.mpi
def test_sigkill_of_hpcdist_run_takes_the_world_down_with_it(stuck) -> None:
    spec, marker = stuck
    proc = start(spec, "-n", "3", "--timeout", str(TIMEOUT))
    _wait_for(marker, proc)
    run_dir = Path(next(spec.parent.glob("runs/*")))
    assert len(_rank_pids(run_dir)) == 3
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while _rank_pids(run_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _rank_pids(run_dir) == []
    m = manifest(run_dir)
    assert m["final"] and m["exit_status"] == ExitCode.INTERRUPTED  # rank 0 still wrapped up in order


def _hold(run_dir: Path, name: str) -> subprocess.Popen:
    """Another process holding lock ``name`` of ``run_dir`` (a run, or a batch job's rank 0)."""
    code = ("import sys, time; from pathlib import Path; from hpcdist.pipeline.lock import RunLock; "
            "RunLock.take(Path(sys.argv[1]), sys.argv[2]); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(run_dir), name], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.mark.parametrize("lock", [".lock", ".lock-world"])
@pytest.mark.parametrize("launch", [MPI, PROCESS])
def test_a_run_directory_in_use_is_refused_with_a_clear_error(project, launch, lock) -> None:
    spec = project()
    code, out, err, run_dir = run(spec, "--backend", "thread", "--workers", "1")
    assert code == 0, err
    before = (run_dir / "manifest.json").read_bytes()
    holder = _hold(run_dir, lock)
    try:
        proc = subprocess.run([sys.executable, "-m", "hpcdist", "run", str(spec), *launch, "--resume", str(run_dir)],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"hpcdist: error: {run_dir}: in use by another hpcdist run (pid {holder.pid} on {os.uname().nodename}); "
        "wait until it ends, or run in another directory"]
    assert (run_dir / "manifest.json").read_bytes() == before  # nothing touched
    code, _, err, _ = run(spec, *launch, "--resume", str(run_dir), "--timeout", str(TIMEOUT))
    assert code == 0, err  # free again once the holder is gone


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
@pytest.mark.parametrize("target", ["spec", "script"])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_refused(project, tmp_path, value, target) -> None:
    path = str(project()) if target == "spec" else str(tmp_path / "driver.py")
    (tmp_path / "driver.py").write_text("print('ran')\n")
    proc = subprocess.run([sys.executable, "-m", "hpcdist", "run", "--backend", "thread", "--timeout", value, path],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1 and "ran" not in proc.stdout
    assert proc.stderr.strip().splitlines() == [f"hpcdist: error: --timeout {float(value):g}: expected a number "
                                                "of seconds > 0"]


def test_the_postmortem_says_in_one_line_which_workers_were_lost_while_the_run_went_on(tmp_path) -> None:
    from hpcdist.postmortem import postmortem

    state = tmp_path / "ranks"
    state.mkdir()
    (state / "rank-1.task").write_text("R total-99~1".ljust(256))
    lost = [{"rank": 2, "running": "squares[3]", "recomputed": ["squares[0]", "squares[1]"]},
            {"rank": 3, "running": None, "recomputed": []}]
    doc = {"tasks": {"total": {"key": "total-99"}}, "lost_workers": []}
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    running = "rank 1 was running pipeline task total (key total-99~1) when the job ended"
    assert postmortem(str(state)) == [running]  # no loss: no line
    (tmp_path / "manifest.json").write_text(json.dumps(dict(doc, lost_workers=lost)))
    assert postmortem(str(state)) == [
        "2 worker(s) were lost while the run went on: rank 2 running squares[3] (2 task(s) recomputed), "
        f"rank 3 (0 task(s) recomputed); see lost_workers in {tmp_path / 'manifest.json'}", running]
