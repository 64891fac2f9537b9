"""hpcdist.batch (submission, jobs and each batch system's queries) against a faked run_command: no batch system needed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import pytest

from hpcdist import batch, commands
from hpcdist.batch import jobs, sge, slurm, submission
from hpcdist.cli import main
from hpcdist.errors import CommandError, RunDirError, SpecError, SubmitError
from hpcdist.commands import CommandResult
from hpcdist.spec.model import load_spec

Handler = Callable[[tuple[str, ...]], tuple[int, str, str]]


class FakeBatch:
    """Stands in for run_command: records every argv, answers from per-command handlers."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, **handlers: Handler) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.handlers = handlers
        monkeypatch.setattr(commands, "run_command", self)

    def __call__(self, argv, timeout=60.0, *, check=True, input=None, env=None) -> CommandResult:
        argv = tuple(str(a) for a in argv)
        assert timeout and timeout > 0, "every batch command needs a timeout"
        self.calls.append(argv)
        handler = self.handlers.get(argv[0])
        if handler is None:
            raise CommandError(f"{argv[0]}: command not found (is it installed and on PATH?)")
        rc, out, err = handler(argv)
        if check and rc != 0:
            raise CommandError(f"{argv[0]} failed (exit {rc}): {err.strip()}")
        return CommandResult(argv, rc, out, err)

    def commands(self) -> list[str]:
        return [c[0] for c in self.calls]


def const(rc: int, out: str = "", err: str = "") -> Handler:
    return lambda argv: (rc, out, err)


def write_spec(tmp_path: Path, scheduler: str = "slurm", extra: str = "") -> Path:
    (tmp_path / "work.py").write_text("print('hi')\n")
    spec = tmp_path / "job.yaml"
    spec.write_text(
        f"name: demo\nscheduler: {scheduler}\n"
        "resources:\n  ranks: 4\n  walltime: \"00:10:00\"\n  memory: 2GiB\n"
        "environment:\n  vars:\n    OMP_NUM_THREADS: 1\n"
        "program:\n  script: work.py --n 3\n"
        "output: runs/{name}-{timestamp}\n" + extra
    )
    return spec


def cli(*argv: str) -> int:
    """Run the hpcdist command line; its exit status."""
    try:
        main(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def run_dirs(tmp_path: Path) -> list[str]:
    runs = tmp_path / "runs"
    return sorted(os.listdir(runs)) if runs.exists() else []


# --- submit -----------------------------------------------------------------------------------


def test_submit_slurm_makes_run_dir_and_records_job(tmp_path, monkeypatch):
    seen_scripts = []

    def sbatch(argv):
        seen_scripts.append(Path(argv[-1]).read_text())  # the script exists when sbatch reads it
        return 0, "42;cluster\n", ""

    fake = FakeBatch(monkeypatch, sbatch=sbatch)
    job = submission.submit(write_spec(tmp_path))
    assert fake.calls[0][:2] == ("sbatch", "--parsable")
    assert job.job_id == "42" and job.system == "slurm"
    assert job.run_dir.parent == tmp_path / "runs" and job.run_dir.name.startswith("demo-")
    assert sorted(os.listdir(job.run_dir)) == ["job.json", "job.sh", "spec.yaml"]
    assert run_dirs(tmp_path) == [job.run_dir.name]  # no temporary sibling left
    assert (job.run_dir / "job.sh").read_text() == seen_scripts[0]
    assert "#SBATCH --ntasks=4" in seen_scripts[0]
    record = json.loads((job.run_dir / "job.json").read_text())
    assert record["job_id"] == "42" and record["system"] == "slurm"
    assert record["script"] == str(job.run_dir / "job.sh")
    assert isinstance(record["submitted"], float)
    assert jobs.Job.from_run_dir(job.run_dir).job_id == "42"


def test_submit_sge_with_scheduler_option_and_override(tmp_path, monkeypatch):
    fake = FakeBatch(monkeypatch, qsub=const(0, "77\n"))
    job = submission.submit(write_spec(tmp_path), scheduler="sge", overrides=["resources.ranks=6"])
    assert fake.calls[0][:2] == ("qsub", "-terse")
    assert job.job_id == "77" and job.system == "sge"
    assert "-pe mpi 6" in (job.run_dir / "job.sh").read_text()


def test_submit_a_loaded_spec_keeps_its_overrides(tmp_path, monkeypatch):
    FakeBatch(monkeypatch, qsub=const(0, "78\n"))
    spec = load_spec(write_spec(tmp_path), ["resources.ranks=6"])
    job = submission.submit(spec, scheduler="sge")
    assert job.system == "sge" and "-pe mpi 6" in (job.run_dir / "job.sh").read_text()
    with pytest.raises(SpecError, match="overrides apply to a spec file"):
        submission.submit(spec, overrides=["resources.ranks=8"])


def test_resolved_spec_copy_loads_back_equal(tmp_path, monkeypatch):
    FakeBatch(monkeypatch, sbatch=const(0, "5\n"))
    job = submission.submit(write_spec(tmp_path), overrides=["resources.ranks=8"])
    original = load_spec(tmp_path / "job.yaml", ["resources.ranks=8"])
    copy = load_spec(job.run_dir / "spec.yaml")
    assert "memory: 2GiB" in (job.run_dir / "spec.yaml").read_text()
    assert copy.resources == original.resources
    assert copy.environment == original.environment
    assert copy.program == original.program
    assert (copy.name, copy.scheduler, copy.launcher) == (original.name, original.scheduler, original.launcher)


@pytest.mark.parametrize("memory", ["1.5GB", "8.2MB", "1.0000001GB", "3KiB"])
def test_resolved_spec_copy_keeps_the_exact_memory(tmp_path, monkeypatch, memory):
    FakeBatch(monkeypatch, sbatch=const(0, "5\n"))
    job = submission.submit(write_spec(tmp_path), overrides=[f"resources.memory={memory}"])
    original = load_spec(tmp_path / "job.yaml", [f"resources.memory={memory}"])
    assert load_spec(job.run_dir / "spec.yaml").resources.memory == original.resources.memory


def test_rejected_submission_leaves_nothing_and_shows_batch_message(tmp_path, monkeypatch):
    msg = "sbatch: error: Batch job submission failed: Invalid partition name specified"
    FakeBatch(monkeypatch, sbatch=const(1, "", msg + "\n"))
    with pytest.raises(SubmitError, match="Invalid partition name specified") as info:
        submission.submit(write_spec(tmp_path))
    assert "sbatch rejected the job (exit 1)" in str(info.value)
    assert run_dirs(tmp_path) == []


def test_invalid_spec_submits_nothing(tmp_path, monkeypatch):
    fake = FakeBatch(monkeypatch, sbatch=const(0, "1\n"), qsub=const(0, "1\n"))
    spec = write_spec(tmp_path)
    with pytest.raises(SpecError, match="resources.ranks"):
        submission.submit(spec, overrides=["resources.ranks=1"])
    with pytest.raises(SpecError, match="scheduler"):
        submission.submit(spec, scheduler="pbs-nonexistent")
    with pytest.raises(SpecError, match="cannot be submitted"):
        submission.submit(write_spec(tmp_path, scheduler="local"))
    assert fake.calls == []
    assert run_dirs(tmp_path) == []


def test_invalid_spec_through_cli_exits_2_and_submits_nothing(tmp_path, monkeypatch, capsys):
    fake = FakeBatch(monkeypatch, sbatch=const(0, "1\n"))
    spec = write_spec(tmp_path)
    code = cli("submit", str(spec), "--set", "resources.walltime=soon")
    assert code == 2
    assert "resources.walltime" in capsys.readouterr().err
    assert fake.calls == []


def test_dry_run_makes_run_dir_without_submitting(tmp_path, monkeypatch, capsys):
    fake = FakeBatch(monkeypatch)
    code = cli("submit", str(write_spec(tmp_path)), "--dry-run")
    assert code == 0
    assert fake.calls == []
    (name,) = run_dirs(tmp_path)
    job = jobs.Job.from_run_dir(tmp_path / "runs" / name)
    assert job.dry_run and job.record["dry_run"] is True
    out = capsys.readouterr().out
    assert f"run directory: {tmp_path / 'runs' / name}" in out and "not submitted" in out
    with pytest.raises(RunDirError, match="dry run"):
        job.status()


def test_two_submits_in_one_second_get_distinct_run_dirs(tmp_path, monkeypatch):
    FakeBatch(monkeypatch, sbatch=const(0, "1\n"))
    monkeypatch.setattr(jobs.time, "strftime", lambda fmt: "20250101-000000")
    a = submission.submit(write_spec(tmp_path))
    b = submission.submit(write_spec(tmp_path))
    assert a.run_dir != b.run_dir and b.run_dir.name == "demo-20250101-000000-2"


def test_submit_cli_prints_run_dir_and_job_id(tmp_path, monkeypatch, capsys):
    FakeBatch(monkeypatch, sbatch=const(0, "123\n"))
    code = cli("submit", str(write_spec(tmp_path)))
    assert code == 0
    out = capsys.readouterr().out
    assert "job id: 123" in out and "run directory: " + str(tmp_path / "runs") in out


# --- status -------------------------------------------------------------------------------------


def make_job(tmp_path: Path, system: str = "slurm", job_id: str = "42", **extra) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record = {"system": system, "job_id": job_id, "submitted": 1.0, "script": str(run_dir / "job.sh"), **extra}
    (run_dir / "job.json").write_text(json.dumps(record))
    return run_dir


@pytest.mark.parametrize(
    "raw, state",
    [("PENDING", "PENDING"), ("CONFIGURING", "PENDING"), ("RUNNING", "RUNNING"), ("COMPLETING", "RUNNING"),
     ("COMPLETED", "COMPLETED"), ("FAILED", "FAILED"), ("OUT_OF_MEMORY", "FAILED"), ("NODE_FAIL", "FAILED"),
     ("CANCELLED by 0", "CANCELLED"), ("CANCELLED+", "CANCELLED"), ("TIMEOUT", "TIMEOUT"), ("WEIRD", "UNKNOWN")],
)  # fmt: skip
def test_slurm_states(raw, state):
    assert slurm.slurm_state(raw) == state


@pytest.mark.parametrize(
    "raw, state",
    [("qw", "PENDING"), ("hqw", "PENDING"), ("r", "RUNNING"), ("t", "RUNNING"), ("dr", "RUNNING"),
     ("Rr", "RUNNING"), ("Eqw", "FAILED"), ("zz", "UNKNOWN")],
)  # fmt: skip
def test_sge_states(raw, state):
    assert sge.sge_state(raw) == state


def test_slurm_one_batched_squeue_for_many_jobs(monkeypatch):
    fake = FakeBatch(monkeypatch, squeue=const(0, "1|RUNNING|None\n2|PENDING|Resources\n3|COMPLETED|None\n"))
    got = batch.query_states("slurm", ["1", "2", "3"])
    assert fake.commands() == ["squeue"]
    assert "--jobs=1,2,3" in fake.calls[0] and "--states=all" in fake.calls[0]
    assert [got[i].state for i in "123"] == ["RUNNING", "PENDING", "COMPLETED"]
    assert got["2"].reason == "Resources" and got["1"].reason == ""


def test_slurm_finished_job_read_from_sacct(monkeypatch):
    fake = FakeBatch(
        monkeypatch,
        squeue=const(1, "", "slurm_load_jobs error: Invalid job id specified\n"),
        sacct=const(0, "9|FAILED|3:0\n"),
    )
    st = batch.query_states("slurm", ["9"])["9"]
    assert fake.commands() == ["squeue", "sacct"]
    assert (st.state, st.exit_code, st.source) == ("FAILED", 3, "sacct")


def test_slurm_finished_job_read_from_jobcomp_without_accounting(tmp_path, monkeypatch):
    comp = tmp_path / "jobcomp.log"
    comp.write_text(
        "JobId=7 UserId=root(0) JobState=COMPLETED Partition=debug ExitCode=0:0 \n"
        "JobId=77 UserId=root(0) JobState=FAILED Partition=debug ExitCode=2:0 \n"
        "JobId=8 UserId=root(0) JobState=CANCELLED Partition=debug ExitCode=0:15 \n"
    )
    config = (
        "JobCompHost             = localhost\n"
        f"JobCompLoc              = {comp}\n"
        "JobCompType             = jobcomp/filetxt\n"
    )
    fake = FakeBatch(
        monkeypatch,
        squeue=const(0, ""),
        sacct=const(1, "", "Slurm accounting storage is disabled\n"),
        scontrol=const(0, config),
    )
    got = batch.query_states("slurm", ["7", "8"])
    assert fake.commands().count("squeue") == 1
    assert (got["7"].state, got["7"].exit_code, got["7"].source) == ("COMPLETED", 0, "jobcomp")
    assert (got["8"].state, got["8"].exit_code) == ("CANCELLED", 128 + 15)
    assert batch.query_states("slurm", ["12345"])["12345"].state == "UNKNOWN"


def test_slurm_queue_failure_is_a_command_error(monkeypatch):
    FakeBatch(monkeypatch, squeue=const(1, "", "squeue: error: Unable to contact slurm controller\n"))
    with pytest.raises(CommandError, match="Unable to contact slurm controller"):
        batch.query_states("slurm", ["1"])


QSTAT = """\
job-ID  prior   name       user         state submit/start at     queue                          slots ja-task-ID
-----------------------------------------------------------------------------------------------------------------
     11 0.50000 demo       root         r     11/22/2026 16:26:49 all.q@vm                           4
     12 0.00000 demo       root         qw    11/22/2026 16:26:50                                    4
     13 0.00000 demo       root         Eqw   11/22/2026 16:26:50                                    4
"""

QACCT = """\
==============================================================
qname        all.q
jobnumber    {id}
failed       {failed}
exit_status  {exit}
ru_wallclock 2s
"""


def test_sge_one_qstat_then_qacct_for_the_rest(monkeypatch):
    def qacct(argv):
        return 0, QACCT.format(id=argv[-1], failed="0", exit="0"), ""

    fake = FakeBatch(monkeypatch, qstat=const(0, QSTAT), qacct=qacct)
    got = batch.query_states("sge", ["11", "12", "13", "14"])
    assert fake.commands() == ["qstat", "qacct"] and fake.calls[1][-1] == "14"
    assert [got[i].state for i in ("11", "12", "13", "14")] == ["RUNNING", "PENDING", "FAILED", "COMPLETED"]
    assert got["14"].exit_code == 0 and got["14"].source == "qacct"


@pytest.mark.parametrize(
    "failed, exit, state",
    [("0", "0", "COMPLETED"), ("0", "3", "FAILED"), ("37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", "137",
      "TIMEOUT"), ("100 : assumedly after job", "137                  (Killed)", "CANCELLED"),
     ("26  : opening input/output file", "0", "FAILED")],
)  # fmt: skip
def test_sge_accounting_states(monkeypatch, failed, exit, state):
    FakeBatch(monkeypatch, qstat=const(0, QSTAT), qacct=const(0, QACCT.format(id=5, failed=failed, exit=exit)))
    st = batch.query_states("sge", ["5"])["5"]
    assert st.state == state
    assert st.exit_code == int(exit.split()[0])


def test_sge_job_without_accounting_is_unknown_unless_cancelled(tmp_path, monkeypatch):
    FakeBatch(monkeypatch, qstat=const(0, QSTAT), qacct=const(1, "", "error: job id 6 not found\n"))
    assert batch.query_states("sge", ["6"])["6"].state == "UNKNOWN"
    job = jobs.Job.from_run_dir(make_job(tmp_path, "sge", "6", cancel_requested=2.0))
    assert job.status().state == "CANCELLED"


def test_status_reads_progress_and_exit_code_file(tmp_path, monkeypatch):
    run_dir = make_job(tmp_path)
    progress = {"done": 3, "failed": 1, "running": 2, "total": 10, "updated": "2026-01-01T00:00:00Z"}
    (run_dir / "progress.json").write_text(json.dumps(progress))
    (run_dir / "exit_code").write_text("0\n")
    FakeBatch(monkeypatch, squeue=const(0, "42|COMPLETED|None\n"))
    st = jobs.Job.from_run_dir(run_dir).status()
    assert st.progress == progress and st.exit_code == 0


@pytest.mark.parametrize(
    "squeue, code",
    [("42|COMPLETED|None\n", 0), ("42|FAILED|NonZeroExitCode\n", 1), ("42|CANCELLED|None\n", 1),
     ("42|TIMEOUT|None\n", 1), ("42|PENDING|Priority\n", 10), ("42|RUNNING|None\n", 10)],
)  # fmt: skip
def test_status_cli_exit_codes(tmp_path, monkeypatch, capsys, squeue, code):
    run_dir = make_job(tmp_path)
    (run_dir / "progress.json").write_text(
        '{"done": 1, "failed": 0, "running": 2, "total": 5, "updated": "2026-01-01T00:00:00Z"}')
    FakeBatch(monkeypatch, squeue=const(0, squeue))
    rc = cli("status", str(run_dir))
    assert rc == code
    out = capsys.readouterr().out
    assert f"job 42 (slurm): {squeue.split('|')[1]}" in out
    assert "progress: 1/5 done, 0 failed, 2 running (updated 2026-01-01T00:00:00Z)" in out


def test_status_cli_batch_failure_exits_3(tmp_path, monkeypatch, capsys):
    run_dir = make_job(tmp_path)
    FakeBatch(monkeypatch)  # no squeue on this machine
    code = cli("status", str(run_dir))
    assert code == 3
    assert "squeue: command not found" in capsys.readouterr().err


def test_status_cli_usage_errors_exit_2(tmp_path, monkeypatch, capsys):
    FakeBatch(monkeypatch)
    for target in (str(tmp_path / "nope"), str(tmp_path)):
        code = cli("status", target)
        assert code == 2
    err = capsys.readouterr().err
    assert "no such run directory" in err and "not a run directory" in err
    for interval in ("0", "-1"):
        assert cli("status", str(tmp_path), "--watch", "--interval", interval) == 2
    assert "Invalid value for '--interval'" in capsys.readouterr().err


def test_status_of_bare_job_id_with_scheduler(monkeypatch, capsys):
    fake = FakeBatch(monkeypatch, qstat=const(0, QSTAT))
    code = cli("status", "12", "--scheduler", "sge")
    assert code == 10
    assert fake.commands() == ["qstat"] and "job 12 (sge): PENDING" in capsys.readouterr().out


def test_status_watch_polls_until_final(tmp_path, monkeypatch, capsys):
    answers = iter(["42|PENDING|Priority\n", "42|RUNNING|None\n", "42|RUNNING|None\n", "42|COMPLETED|None\n"])
    fake = FakeBatch(monkeypatch, squeue=lambda argv: (0, next(answers), ""))
    code = cli("status", str(make_job(tmp_path)), "--watch", "--interval", "0.01")
    assert code == 0 and fake.commands() == ["squeue"] * 4
    out = capsys.readouterr().out
    assert out.count("RUNNING") == 1 and out.index("PENDING") < out.index("RUNNING") < out.index("COMPLETED")


# --- wait and cancel -------------------------------------------------------------------------------


def test_wait_backs_off_and_returns_final_state(tmp_path, monkeypatch):
    answers = iter(["42|PENDING|None\n"] * 3 + ["42|RUNNING|None\n", "42|TIMEOUT|None\n"])
    FakeBatch(monkeypatch, squeue=lambda argv: (0, next(answers), ""))
    sleeps: list[float] = []
    monkeypatch.setattr(jobs.time, "sleep", sleeps.append)
    st = jobs.Job.from_run_dir(make_job(tmp_path)).wait(poll=0.1, max_poll=0.3)
    assert st.state == "TIMEOUT"
    assert sleeps == pytest.approx([0.1, 0.15, 0.225, 0.3])


def test_wait_times_out(tmp_path, monkeypatch):
    FakeBatch(monkeypatch, squeue=const(0, "42|PENDING|Priority\n"))
    with pytest.raises(TimeoutError, match="still PENDING"):
        jobs.Job.from_run_dir(make_job(tmp_path)).wait(timeout=0.05, poll=0.01)


def test_cancel_runs_scancel_and_notes_the_request(tmp_path, monkeypatch, capsys):
    run_dir = make_job(tmp_path)
    fake = FakeBatch(monkeypatch, scancel=const(0))
    code = cli("cancel", str(run_dir))
    assert code == 0
    assert fake.calls == [("scancel", "-v", "42")]
    assert "cancel_requested" in json.loads((run_dir / "job.json").read_text())
    assert "cancel requested for slurm job 42" in capsys.readouterr().out


def test_cancel_refused_shows_batch_message(tmp_path, monkeypatch, capsys):
    FakeBatch(monkeypatch, qdel=const(1, "", 'denied: job "99" does not exist\n'))
    code = cli("cancel", "99", "--scheduler", "sge")
    assert code == 4
    assert 'nothing cancelled: denied: job "99" does not exist' in capsys.readouterr().err


@pytest.mark.parametrize("installed, expect", [(("squeue",), "slurm"), (("qstat",), "sge"), ((), None),
                                               (("squeue", "qstat"), None)])
def test_bare_job_id_picks_the_installed_batch_system(monkeypatch, installed, expect):
    monkeypatch.setattr(jobs.shutil, "which", lambda cmd: f"/bin/{cmd}" if cmd in installed else None)
    if expect is None:
        with pytest.raises(RunDirError, match="--scheduler"):
            jobs.resolve_job("123")
    else:
        job = jobs.resolve_job("123")
        assert (job.job_id, job.system, job.run_dir) == ("123", expect, None)
    assert jobs.resolve_job("123", "sge").system == "sge"


# --- the real run_command ----------------------------------------------------------------------


def test_run_command_failures_are_one_line_command_errors(tmp_path):
    run = commands.run_command  # the module's own, not a fake
    result = run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10, check=False)
    assert (result.returncode, result.stdout, result.stderr, result.tail()) == (3, "out\n", "err\n", "err")
    with pytest.raises(CommandError, match=r"^sh failed \(exit 3\): a / b$"):
        run(["sh", "-c", "printf 'a\\nb\\n' >&2; exit 3"], timeout=10)
    with pytest.raises(CommandError, match="command not found"):
        run([str(tmp_path / "nope")], timeout=10)
    not_executable = tmp_path / "script.sh"
    not_executable.write_text("#!/bin/sh\n")
    with pytest.raises(CommandError, match=r"script.sh: cannot run it: Permission denied"):
        run([str(not_executable)], timeout=10)
    with pytest.raises(CommandError, match=r"no answer within 0.2 s"):
        run(["sleep", "5"], timeout=0.2)
