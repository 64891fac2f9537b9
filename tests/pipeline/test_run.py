"""`hpcdist run SPEC` end to end on every backend: outputs, hash, failures, resume, stops."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpcdist.exitcodes import ExitCode

TIMEOUT = 60


def start(spec: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    full = dict(os.environ, MPIEXEC_TIMEOUT=str(TIMEOUT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    full.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "hpcdist", "run", str(spec), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full, stdin=subprocess.DEVNULL)


def run(spec: Path, *args: str, env: dict | None = None) -> tuple[int, str, str, Path]:
    proc = start(spec, *args, env=env)
    out, err = proc.communicate(timeout=TIMEOUT + 15)
    match = re.search(r"run directory: (\S+)", out)
    assert match, f"no run directory printed\n{out}\n{err}"
    return proc.returncode, out, err, Path(match.group(1))


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def statuses(run_dir: Path) -> dict[str, str]:
    return {tid: t["status"] for tid, t in manifest(run_dir)["tasks"].items()}


def digest(out: str) -> str:
    match = re.search(r"output_hash ([0-9a-f]{64})", out)
    assert match, out
    return match.group(1)


BACKENDS = [("--backend", "local"), ("--backend", "thread", "--workers", "1"),
            ("--backend", "thread", "--workers", "4"), ("--backend", "process", "--workers", "2")]


def test_basic_run_writes_outputs_manifest_and_hash(project) -> None:
    code, out, err, run_dir = run(project(), "--backend", "thread", "--workers", "2")
    assert code == 0, err
    assert json.loads((run_dir / "outputs/sum.json").read_text()) == 3 * sum(i * i for i in range(6))
    assert [json.loads(p.read_text()) for p in sorted((run_dir / "outputs/lit").iterdir())] == [1, 4, 9]
    assert json.loads((run_dir / "outputs/numbers.json").read_text()) == list(range(6))
    m = manifest(run_dir)
    assert m["final"] and m["exit_status"] == 0 and m["output_hash"] == digest(out)
    assert (run_dir / "output_hash").read_text().strip() == digest(out)
    assert set(statuses(run_dir).values()) == {"done"} and len(m["tasks"]) == 1 + 6 + 6 + 1 + 3
    t = m["tasks"]["squares[2]"]
    assert t["attempts"] == 1 and t["rank"] in (1, 2) and t["host"] and t["bytes"] == 2
    assert t["inputs"] == ["numbers"] and t["end"] >= t["start"] and t["output"].endswith(".json")
    assert (run_dir / "spec.yaml").exists() and (run_dir / "logs/rank-0.log").exists()
    assert list((run_dir / "logs").glob("worker-*.log"))


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: "-".join(b[1::2]))
def test_output_hash_is_the_same_on_every_backend(project, backend) -> None:
    reference = run(project(), "--backend", "thread", "--workers", "2")
    code, out, err, _ = run(project(), *backend)
    assert code == 0, err
    assert digest(out) == digest(reference[1])


@pytest.mark.mpi
def test_output_hash_is_the_same_under_mpi_with_1_2_4_workers(project) -> None:
    reference = digest(run(project(), "--backend", "thread", "--workers", "3")[1])
    for n in ("2", "3", "5"):
        code, out, err, run_dir = run(project(), "-n", n, "--timeout", str(TIMEOUT))
        assert code == 0, err
        assert digest(out) == reference
        ranks = {t["rank"] for t in manifest(run_dir)["tasks"].values()}
        assert ranks <= set(range(1, int(n)))


def test_failures_are_contained_and_retried(project, tmp_path: Path) -> None:
    spec = project(f"""\
        tasks:
          bad: {{call: boom, map: [1, 2]}}
          after_bad: {{call: total, args: [{{ref: bad}}]}}
          flaky: {{call: fail_first, map: [1, 2], args: ["{tmp_path}/m"], retries: 1}}
          fine: {{call: square, args: [4]}}
        save: [fine, flaky]
        """)
    code, out, err, run_dir = run(spec, "--backend", "thread", "--workers", "2")
    assert code == ExitCode.TASKS_FAILED
    st = statuses(run_dir)
    assert st == {"bad[0]": "failed", "bad[1]": "failed", "after_bad": "skipped", "flaky[0]": "done",
                  "flaky[1]": "done", "fine": "done"}
    m = manifest(run_dir)
    assert m["tasks"]["bad[1]"]["error"] == "ValueError: boom 2"
    assert m["tasks"]["flaky[0]"]["attempts"] == 2 and m["exit_status"] == ExitCode.TASKS_FAILED
    assert "task bad[0] failed: ValueError: boom 1" in err
    assert json.loads((run_dir / "outputs/fine.json").read_text()) == 16


def test_on_error_stop_dispatches_nothing_new(project) -> None:
    spec = project("""\
        on_error: stop
        tasks:
          bad: {call: boom, args: [1]}
          later: {call: nap, map: [1, 2, 3, 4], kwargs: {seconds: 0.2}, after: [bad]}
        """)
    code, _, _, run_dir = run(spec, "--backend", "thread", "--workers", "1")
    assert code == ExitCode.TASKS_FAILED
    assert statuses(run_dir)["bad"] == "failed"
    assert {s for t, s in statuses(run_dir).items() if t.startswith("later")} <= {"skipped", "not_run"}


def test_a_timed_out_task_fails_and_the_run_goes_on(project) -> None:
    spec = project("""\
        tasks:
          slow: {call: nap, args: [1], kwargs: {seconds: 30}, timeout: 0.5}
          quick: {call: square, map: [1, 2, 3]}
        """)
    t0 = time.monotonic()
    code, _, _, run_dir = run(spec, "--backend", "process", "--workers", "2")
    assert time.monotonic() - t0 < 15
    assert code == ExitCode.TASKS_FAILED
    st = statuses(run_dir)
    assert st["slow"] == "failed" and all(st[f"quick[{i}]"] == "done" for i in range(3))
    assert "TaskTimeout" in manifest(run_dir)["tasks"]["slow"]["error"]


def crash_body(tmp_path: Path, signal_death: bool) -> str:
    kwargs = "{delay: 0.1, signal_death: true}" if signal_death else "{delay: 0.1}"
    return f"""\
        tasks:
          items: {{call: crash_once, map: [0, 1, 2, 3, 4, 5, 6, 7], args: ["{tmp_path}/crashed"],
                  kwargs: {kwargs}}}
          sum: {{call: total, args: [{{ref: items}}]}}
        """


def assert_one_loss_recorded(m: dict, err: str) -> None:
    """The manifest names the one lost worker, the task it ran (items[3], which killed it) and what
    was computed again; each such task counts a lost run, never an attempt of its own."""
    [lost] = m["lost_workers"]
    assert str(lost["rank"]) not in m["workers"] and lost["running"] == "items[3]", lost
    assert lost["host"] and lost["reason"] and lost["time"] <= time.time() and lost["workers_left"] == 1, lost
    assert set(lost["recomputed"]) <= {f"items[{i}]" for i in range(8)} and "items[3]" in lost["requeued"], lost
    assert lost["recomputed_keys"] >= len(lost["recomputed"]), lost
    assert f"hpcdist: lost rank {lost['rank']} (pid {lost['pid']}, host " in err, err
    lost_runs = {tid: t["lost_runs"] for tid, t in m["tasks"].items() if t["lost_runs"]}
    assert lost_runs == {tid: 1 for tid in {"items[3]", *lost["recomputed"]}}, (lost_runs, lost)
    assert {t["attempts"] for t in m["tasks"].values()} == {1}


def test_a_worker_process_that_exits_mid_pipeline_is_recorded_in_the_manifest(project, tmp_path: Path) -> None:
    body = crash_body(tmp_path, signal_death=False)
    (tmp_path / "crashed").touch()
    clean = run(project(body, "clean.yaml"), "--backend", "thread", "--workers", "2")
    assert manifest(clean[3])["lost_workers"] == [] and {t["lost_runs"] for t in manifest(clean[3])["tasks"].values()} == {0}
    (tmp_path / "crashed").unlink()
    code, out, err, run_dir = run(project(body), "--backend", "process", "--workers", "2")
    assert code == 0, err
    assert (tmp_path / "crashed").exists(), "the task never killed its worker"
    m = manifest(run_dir)
    assert {t["status"] for t in m["tasks"].values()} == {"done"}
    assert_one_loss_recorded(m, err)
    assert digest(out) == digest(clean[1]) == m["output_hash"]


@pytest.mark.mpi
def test_a_worker_that_exits_mid_pipeline_costs_its_task_not_the_run(project, tmp_path: Path) -> None:
    # hpcdist run starts Hydra with -disable-auto-cleanup: the survivors live on after a rank's exit
    body = crash_body(tmp_path, signal_death=False)
    (tmp_path / "crashed").touch()
    clean = run(project(body, "clean.yaml"), "--backend", "thread", "--workers", "2")
    (tmp_path / "crashed").unlink()
    code, out, err, run_dir = run(project(body), "-n", "3", "--timeout", str(TIMEOUT))
    assert code == 0, err
    assert (tmp_path / "crashed").exists(), "the task never killed its worker"
    assert "hpcdist: lost rank" in err and "walltime" not in err, err
    assert {t["status"] for t in manifest(run_dir)["tasks"].values()} == {"done"}
    assert_one_loss_recorded(manifest(run_dir), err)
    assert digest(out) == digest(clean[1])


@pytest.mark.mpi
def test_resume_after_a_worker_dies_recomputes_only_unfinished_tasks(project, tmp_path: Path) -> None:
    # a signal death: Hydra ends the whole world, and resume finishes the rest
    body = crash_body(tmp_path, signal_death=True)
    (tmp_path / "crashed").touch()  # the reference run must not crash
    clean = run(project(body, "clean.yaml"), "--backend", "thread", "--workers", "2")
    (tmp_path / "crashed").unlink()
    spec = project(body)
    code, _, err, run_dir = run(spec, "-n", "3", "--timeout", str(TIMEOUT))
    assert code not in (0, ExitCode.TASKS_FAILED), err
    assert (tmp_path / "crashed").exists()
    before = {p.name.split(".")[0] for p in (run_dir / "objects").glob("*.meta.json")}
    assert 0 < len(before) < 9
    code, out, err, again = run(spec, "-n", "3", "--resume", str(run_dir), "--timeout", str(TIMEOUT))
    assert code == 0, err
    assert again == run_dir
    m = manifest(run_dir)
    for tid, t in m["tasks"].items():
        assert t["status"] == ("cached" if t["key"] in before else "done"), tid
    assert digest(out) == digest(clean[1])


NAPS = """\
    tasks:
      naps: {call: nap, map: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], kwargs: {seconds: 0.4}}
      sum: {call: total, args: [{ref: naps}]}
    """


def signal_after_first_result(proc: subprocess.Popen, spec_dir: Path, sig: int) -> float:
    """Send ``sig`` once the first result is stored; returns when it was sent."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if list(spec_dir.glob("runs/*/objects/naps-*.meta.json")):
            # rank 0 of an MPI run must be up to receive the forwarded signal
            if not list(spec_dir.glob("runs/*/logs/rank-0.pid")) and "-n" in proc.args:
                time.sleep(0.05)
                continue
            proc.send_signal(sig)
            return time.monotonic()
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no result appeared within 30 s")


@pytest.mark.parametrize("launch", [("--backend", "process", "--workers", "2"),
                                    pytest.param(("-n", "3", "--timeout", str(TIMEOUT)), marks=pytest.mark.mpi)],
                         ids=["process", "mpi"])
def test_sigterm_stops_within_5_s_keeps_results_and_resumes(project, launch) -> None:
    spec = project(NAPS)
    proc = start(spec, *launch)
    sent = signal_after_first_result(proc, spec.parent, signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 5.0
    assert proc.returncode == ExitCode.INTERRUPTED, err
    run_dir = Path(re.search(r"run directory: (\S+)", out).group(1))
    m = manifest(run_dir)
    assert m["final"] and m["exit_status"] == ExitCode.INTERRUPTED and m["reason"] == "interrupted"
    st = statuses(run_dir)
    assert "running" not in st.values() and st["sum"] == "not_run"
    done = [t for t, s in st.items() if s == "done"]
    assert done and all((run_dir / "objects" / m["tasks"][t]["output"]).exists() for t in done)
    code, out, err, _ = run(spec, *launch, "--resume", str(run_dir))
    assert code == 0, err
    reference = digest(run(project(NAPS, "ref.yaml"), "--backend", "thread", "--workers", "4")[1])
    assert digest(out) == reference
    assert sum(1 for s in statuses(run_dir).values() if s == "cached") >= len(done)


@pytest.mark.parametrize("launch", [("--backend", "process", "--workers", "2"),
                                    pytest.param(("-n", "3", "--timeout", str(TIMEOUT)), marks=pytest.mark.mpi)],
                         ids=["process", "mpi"])
def test_walltime_warning_stops_dispatch_and_lets_running_tasks_finish(project, launch) -> None:
    spec = project(NAPS)
    proc = start(spec, *launch)
    signal_after_first_result(proc, spec.parent, signal.SIGUSR1)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == ExitCode.WALLTIME, err
    run_dir = Path(re.search(r"run directory: (\S+)", out).group(1))
    m = manifest(run_dir)
    assert m["final"] and m["reason"] == "walltime" and m["exit_status"] == ExitCode.WALLTIME
    st = statuses(run_dir)
    assert "running" not in st.values() and st["sum"] == "not_run"
    assert 0 < sum(1 for s in st.values() if s == "done") < 16  # the tasks running at the warning finished
    assert not (run_dir / "output_hash").exists()
    code, _, err, _ = run(spec, *launch, "--resume", str(run_dir))
    assert code == 0, err
