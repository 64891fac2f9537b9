"""Job ids from every source, tampered job.json, unknown ids, batched accounting and the
status/submit output for scripts (issue 10), against a faked run_command."""

from __future__ import annotations

import json

import pytest
from test_jobs import QACCT, QSTAT, FakeBatch, cli, const, make_job, write_spec

from hpcdist import batch
from hpcdist.batch import get_system, jobs
from hpcdist.errors import JobIdError

BAD_IDS = [
    "--me", "-u", "-a", "--user=root", "--all", "-1", "- 1", "", " ", "1 2", "1,2", "1;rm", "$(id)", "`id`", "1\n2",
    "1\x00", "abc", "0", "01", "1.", "1..2", "1_", "_1", "1+", "+1", "1_2_3", "1.2.3", "1-2", "*", "1*", "~",
    "1" * 40, "\u0661",  # Arabic-Indic digit one: str.isdigit() says True
]
GOOD = {"slurm": ["1", "42", "4242424", "42_7", "42+1"], "sge": ["1", "27", "27.3"]}
WRONG_SYSTEM = {"slurm": ["27.3"], "sge": ["42_7", "42+1"]}


@pytest.mark.parametrize("system", ["slurm", "sge"])
def test_job_id_syntax_per_system(system):
    checker = get_system(system)
    for job_id in GOOD[system]:
        assert checker.check_job_id(job_id) == job_id
    for job_id in BAD_IDS + WRONG_SYSTEM[system] + [42, None, ["1"], {"id": 1}, True]:
        with pytest.raises(JobIdError, match="is not a"):
            checker.check_job_id(job_id)


@pytest.mark.parametrize("system, job_id", [(s, j) for s in ("slurm", "sge") for j in BAD_IDS + WRONG_SYSTEM[s]])
def test_cancel_never_passes_a_bad_id_from_job_json(tmp_path, monkeypatch, capsys, system, job_id):
    run_dir = make_job(tmp_path, system, job_id)
    before = (run_dir / "job.json").read_bytes()
    fake = FakeBatch(monkeypatch, scancel=const(0), qdel=const(0), squeue=const(0), qstat=const(0))
    for command in ("cancel", "status"):
        code = cli(command, str(run_dir))
        assert code == 2, (command, capsys.readouterr())
        err = capsys.readouterr().err
        assert err.startswith("hpcdist: error: ") and err.count("\n") == 1 and "job_id" in err, err
    assert fake.calls == []
    assert (run_dir / "job.json").read_bytes() == before  # no cancel_requested noted for a refused id


@pytest.mark.parametrize("system", ["slurm", "sge"])
@pytest.mark.parametrize("job_id", ["--me", "-u", "1.2.3", "1_2_3", "1,2", "0"])
def test_bare_job_id_argument_is_checked(monkeypatch, capsys, system, job_id):
    fake = FakeBatch(monkeypatch, scancel=const(0), qdel=const(0), squeue=const(0), qstat=const(0))
    for command in ("cancel", "status"):
        code = cli(command, "--scheduler", system, "--", job_id)
        assert code == 2, capsys.readouterr()
        assert capsys.readouterr().err.startswith("hpcdist: error: ")
    assert fake.calls == []


def test_library_calls_check_ids_too(monkeypatch):
    fake = FakeBatch(monkeypatch, scancel=const(0), squeue=const(0))
    with pytest.raises(JobIdError):
        jobs.Job(job_id="--me", system="slurm").cancel()
    with pytest.raises(JobIdError):
        batch.query_states("slurm", ["1", "--me"])
    with pytest.raises(JobIdError):
        get_system("sge").cancel_argv("-u")
    assert fake.calls == []


@pytest.mark.parametrize("system, stdout", [
    ("slurm", "--me\n"), ("slurm", "-1\n"), ("slurm", "--me;cluster\n"), ("slurm", "Submitted 12\n"),
    ("sge", "--me\n"), ("sge", "1.2.3\n"), ("sge", "Your job 27 has been submitted\n"), ("sge", "0\n"),
])  # fmt: skip
def test_an_id_sbatch_or_qsub_print_is_checked_at_submit(tmp_path, monkeypatch, capsys, system, stdout):
    spec = write_spec(tmp_path, system)
    fake = FakeBatch(monkeypatch, sbatch=const(0, stdout), qsub=const(0, stdout))
    code = cli("submit", str(spec))
    assert code == 3, capsys.readouterr()
    assert "printed no job id" in capsys.readouterr().err
    assert [c[0] for c in fake.calls] == [{"slurm": "sbatch", "sge": "qsub"}[system]]
    assert not any(p.name.startswith("demo") for p in (tmp_path / "runs").iterdir())


TAMPERED = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a job record"),
    ('"slurm"', "not a job record"),
    ("{}", "system"),
    ('{"system": "pbs", "job_id": "1"}', "system"),
    ('{"system": ["slurm"], "job_id": "1"}', "system"),
    ('{"system": "slurm"}', "job_id: missing"),
    ('{"system": "slurm", "job_id": 42}', "job_id"),
    ('{"system": "slurm", "job_id": "42", "submitted": "yesterday"}', "submitted"),
    ('{"system": "slurm", "job_id": "42", "script": 7}', "script"),
    ('{"system": "slurm", "job_id": "42", "jobs": "all"}', "jobs"),
    ('{"system": "slurm", "job_id": "42", "jobs": [{"job_id": "--me"}]}', "jobs[0].job_id"),
    ('{"system": "slurm", "job_id": "42", "resubmits": -1}', "resubmits"),
    ('{"system": "slurm", "job_id": "42", "cancel_requested": "x"}', "cancel_requested"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"system": "slurm", "job_id": "42", "pad": "' + "x" * (2 << 20) + '"}', "larger than"),
    (b"\xff\xfe{", "not valid JSON"),
]


@pytest.mark.parametrize("text, message", TAMPERED, ids=range(len(TAMPERED)))
def test_tampered_job_json_is_a_one_line_error(tmp_path, monkeypatch, capsys, text, message):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "job.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    fake = FakeBatch(monkeypatch, scancel=const(0), squeue=const(0))
    for command in ("status", "cancel"):
        code = cli(command, str(run_dir))
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.startswith("hpcdist: error: ") and err.count("\n") == 1 and len(err) < 400, err
        assert message in err, err
    assert fake.calls == []


# --- unknown and malformed ids -----------------------------------------------------------------------


def test_sge_task_id_asks_qacct_for_that_task_and_checks_the_answer(monkeypatch):
    def qacct(argv):
        # qacct answers `-j 1.2.3` or `-j 1_2` with job 1's record: hpcdist never asks like that,
        # and a record for another job or task is not taken
        return 0, QACCT.format(id="1", failed="0", exit="0") + "taskid       undefined\n", ""

    fake = FakeBatch(monkeypatch, qstat=const(0, QSTAT), qacct=qacct)
    got = batch.query_states("sge", ["1.2"])
    assert fake.calls[1] == ("qacct", "-j", "1", "-t", "2")
    assert got["1.2"].state == "UNKNOWN"
    assert batch.query_states("sge", ["1"])["1"].state == "COMPLETED"


def test_sge_record_of_another_job_is_unknown(monkeypatch):
    FakeBatch(monkeypatch, qstat=const(0, QSTAT), qacct=const(0, QACCT.format(id="7", failed="0", exit="0")))
    assert batch.query_states("sge", ["70"])["70"].state == "UNKNOWN"


QSTAT_ARRAY = QSTAT + """\
     20 0.50000 arr        root         r     11/22/2026 16:26:49 all.q@vm                           1 3
     20 0.00000 arr        root         qw    11/22/2026 16:26:50                                    1 4-6:1
"""


def test_sge_array_tasks_in_qstat(monkeypatch):
    FakeBatch(monkeypatch, qstat=const(0, QSTAT_ARRAY), qacct=const(1, "", "error: job id 20 not found\n"))
    got = batch.query_states("sge", ["20.3", "20.5", "20.9"])
    assert (got["20.3"].state, got["20.5"].state, got["20.9"].state) == ("RUNNING", "PENDING", "UNKNOWN")


@pytest.mark.parametrize("system, handlers, message", [
    ("slurm", {"scancel": const(0, "", "scancel: Terminating job 99999999\nscancel: error: Kill job error on job id "
                                        "99999999: Invalid job id specified\n")}, "Invalid job id specified"),
    ("slurm", {"scancel": const(0, "", "scancel: error: Kill job error on job id 5: Job/step already completing or "
                                        "completed\n")}, "already completing or completed"),
    ("sge", {"qdel": const(1, "", 'denied: job "99999" does not exist\n')}, "does not exist"),
])  # fmt: skip
def test_cancel_of_unknown_or_finished_job_says_nothing_was_cancelled(tmp_path, monkeypatch, capsys, system,
                                                                      handlers, message):
    run_dir = make_job(tmp_path, system, "99999999" if system == "slurm" else "99999")
    FakeBatch(monkeypatch, **handlers)
    code = cli("cancel", str(run_dir))
    out, err = capsys.readouterr()
    assert code == 4 and "cancel requested" not in out
    assert err.startswith("hpcdist: error: nothing cancelled: ") and message in err
    assert "cancel_requested" not in json.loads((run_dir / "job.json").read_text())


def test_cancel_that_worked_exits_0(tmp_path, monkeypatch, capsys):
    FakeBatch(monkeypatch, scancel=const(0, "", "scancel: Terminating job 42\n"))
    assert cli("cancel", str(make_job(tmp_path))) == 0
    assert "cancel requested for slurm job 42" in capsys.readouterr().out


# --- accounting: one lookup per poll -------------------------------------------------------------------


def test_slurm_one_sacct_for_every_job_that_left_the_queue(monkeypatch):
    fake = FakeBatch(monkeypatch, squeue=const(0, "1|RUNNING|None\n"),
                     sacct=const(0, "2|COMPLETED|0:0\n3|FAILED|1:0\n4|TIMEOUT|0:15\n"))
    got = batch.query_states("slurm", ["1", "2", "3", "4", "5"])
    assert fake.commands() == ["squeue", "sacct"]
    assert fake.calls[1][fake.calls[1].index("-j") + 1] == "2,3,4,5"
    assert [got[i].state for i in "12345"] == ["RUNNING", "COMPLETED", "FAILED", "TIMEOUT", "UNKNOWN"]


def test_slurm_one_scontrol_and_one_jobcomp_read_without_accounting(tmp_path, monkeypatch):
    comp = tmp_path / "jobcomp.log"
    comp.write_text("".join(f"JobId={i} JobState=COMPLETED ExitCode=0:0 \n" for i in range(1, 200)))
    fake = FakeBatch(monkeypatch, squeue=const(0, ""), sacct=const(1, "", "Slurm accounting storage is disabled\n"),
                     scontrol=const(0, f"JobCompLoc = {comp}\nJobCompType = jobcomp/filetxt\n"))
    ids = [str(i) for i in range(100, 150)] + ["5000"]
    got = batch.query_states("slurm", ids)
    assert fake.commands() == ["squeue", "sacct", "scontrol"]
    assert all(got[i].state == "COMPLETED" for i in ids[:-1]) and got["5000"].state == "UNKNOWN"


def test_sge_one_qacct_per_finished_job_and_none_for_queued_ones(monkeypatch):
    fake = FakeBatch(monkeypatch, qstat=const(0, QSTAT),
                     qacct=lambda argv: (0, QACCT.format(id=argv[2], failed="0", exit="0"), ""))
    batch.query_states("sge", ["11", "12", "13", "30", "31"])
    assert fake.commands() == ["qstat", "qacct", "qacct"]  # qacct -j takes one job per call


def test_status_of_several_jobs_is_one_poll(tmp_path, monkeypatch, capsys):
    dirs = []
    for i, job_id in enumerate(["41", "42", "43"]):
        sub = tmp_path / f"j{i}"
        sub.mkdir()
        dirs.append(str(make_job(sub, "slurm", job_id)))
    fake = FakeBatch(monkeypatch, squeue=const(0, "41|RUNNING|None\n"), sacct=const(0, "42|COMPLETED|0:0\n"))
    code = cli("status", *dirs, "--json")
    assert fake.commands() == ["squeue", "sacct"]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["job_id"], d["state"]) for d in lines] == [("41", "RUNNING"), ("42", "COMPLETED"), ("43", "UNKNOWN")]
    assert code == 10


@pytest.mark.parametrize("states, code", [
    (["COMPLETED", "COMPLETED"], 0), (["COMPLETED", "FAILED"], 1), (["COMPLETED", "UNKNOWN"], 4),
    (["FAILED", "UNKNOWN"], 1), (["RUNNING", "FAILED"], 10), (["PENDING"], 10), (["CANCELLED"], 1),
])  # fmt: skip
def test_combined_exit_code(states, code):
    assert jobs.combined_exit_code(states) == code


# --- output for people and scripts ----------------------------------------------------------------------


@pytest.mark.parametrize("system, name", [("slurm", "slurm-42.out"), ("sge", "sge-42.out")])
def test_status_prints_the_output_file(tmp_path, monkeypatch, capsys, system, name):
    run_dir = make_job(tmp_path, system, "42")
    FakeBatch(monkeypatch, squeue=const(0, "42|RUNNING|None\n"),
              qstat=const(0, QSTAT.replace("     11 ", "     42 ")))
    cli("status", str(run_dir))
    assert f"  output: {run_dir / name} (not written yet)" in capsys.readouterr().out
    (run_dir / name).write_text("")
    cli("status", str(run_dir))
    assert f"  output: {run_dir / name}\n" in capsys.readouterr().out


def test_status_json_is_one_object_per_job(tmp_path, monkeypatch, capsys):
    run_dir = make_job(tmp_path)
    progress = {"done": 5, "failed": 1, "running": 2, "total": 9, "updated": "2026-01-01T00:00:00Z"}
    (run_dir / "progress.json").write_text(json.dumps(progress))
    (run_dir / "exit_code").write_text("0\n")
    FakeBatch(monkeypatch, squeue=const(0, "42|COMPLETED|None\n"))
    assert cli("status", str(run_dir), "--json") == 0
    out = capsys.readouterr().out
    assert json.loads(out) == {
        "job_id": "42", "system": "slurm", "state": "COMPLETED", "raw_state": "COMPLETED", "exit_code": 0,
        "reason": "", "source": "squeue", "run_dir": str(run_dir), "output": str(run_dir / "slurm-42.out"),
        "progress": progress,
    }


PARTIAL = ['{"done": 1, "failed": 0, "running": 1, "tot', "", "[]", '{"done": 1}',
           '{"done": "1", "failed": 0, "running": 0, "total": 2, "updated": "x"}',
           '{"done": 1, "failed": 0, "running": 0, "total": 2}',
           '{"done": -1, "failed": 0, "running": 0, "total": 2, "updated": "x"}',
           '{"done": true, "failed": 0, "running": 0, "total": 2, "updated": "x"}']


@pytest.mark.parametrize("text", PARTIAL)
def test_partial_or_malformed_progress_is_not_shown(tmp_path, monkeypatch, capsys, text):
    run_dir = make_job(tmp_path)
    (run_dir / "progress.json").write_text(text)
    FakeBatch(monkeypatch, squeue=const(0, "42|RUNNING|None\n"))
    assert cli("status", str(run_dir)) == 10
    assert "progress" not in capsys.readouterr().out


def test_status_watch_shows_progress_as_it_changes(tmp_path, monkeypatch, capsys):
    run_dir = make_job(tmp_path)
    reports = iter([None, (1, 0, 2), (1, 0, 2), "partial", (3, 1, 0), (3, 1, 0)])
    answers = iter(["42|RUNNING|None\n"] * 5 + ["42|COMPLETED|None\n"])

    def squeue(argv):
        report = next(reports)
        if report == "partial":
            (run_dir / "progress.json").write_text('{"done": 3, "fai')
        elif report is not None:
            done, failed, running = report
            (run_dir / "progress.json").write_text(json.dumps(
                {"done": done, "failed": failed, "running": running, "total": 4, "updated": f"2026-01-01T00:00:0{done}Z"}))
        return 0, next(answers), ""

    FakeBatch(monkeypatch, squeue=squeue)
    assert cli("status", str(run_dir), "--watch", "--interval", "0.01") == 0
    out = capsys.readouterr().out
    assert out.count("RUNNING") == 3  # no progress yet, 1/4, 3/4: the partial file printed nothing
    out = list(dict.fromkeys(line.strip() for line in out.splitlines() if "progress" in line))
    assert out == ["progress: 1/4 done, 0 failed, 2 running (updated 2026-01-01T00:00:01Z)",
                   "progress: 3/4 done, 1 failed, 0 running (updated 2026-01-01T00:00:03Z)"]


@pytest.mark.parametrize("system, stdout, expect", [("slurm", "4242\n", "4242"), ("slurm", "77;cluster\n", "77"),
                                                    ("sge", "27\n", "27"), ("sge", "27.1-4:1\n", "27")])
def test_submit_parsable_prints_the_job_id_alone(tmp_path, monkeypatch, capsys, system, stdout, expect):
    spec = write_spec(tmp_path, system)
    FakeBatch(monkeypatch, sbatch=const(0, stdout), qsub=const(0, stdout))
    assert cli("submit", str(spec), "--parsable") == 0
    assert capsys.readouterr().out == f"{expect}\n"


def test_submit_parsable_with_dry_run_is_a_usage_error(tmp_path, monkeypatch, capsys):
    fake = FakeBatch(monkeypatch)
    assert cli("submit", str(write_spec(tmp_path)), "--parsable", "--dry-run") == 2
    assert fake.calls == [] and not (tmp_path / "runs").exists()


def test_sge_one_qacct_for_several_finished_jobs_with_known_submission_times(tmp_path, monkeypatch):
    records = "".join(QACCT.format(id=i, failed="0", exit=str(i % 2)) for i in (30, 31, 99))
    fake = FakeBatch(monkeypatch, qstat=const(0, QSTAT), qacct=const(0, records))
    job_list = []
    for i, job_id in enumerate(["11", "30", "31", "32"]):
        sub = tmp_path / f"j{i}"
        sub.mkdir()
        job_list.append(jobs.Job.from_run_dir(make_job(sub, "sge", job_id, submitted=1_700_000_000.0 + i)))
    got = jobs.statuses(job_list)
    # one qacct for all finished jobs started since the earliest submission; job 32 has no
    # record there and is asked for alone (it may be a job that never started)
    assert fake.commands() == ["qstat", "qacct", "qacct"]
    assert fake.calls[1][:3] == ("qacct", "-j", "-b") and fake.calls[2] == ("qacct", "-j", "32")
    assert [st.state for st in got] == ["RUNNING", "COMPLETED", "FAILED", "UNKNOWN"]
