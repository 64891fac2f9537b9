"""Hostile values through the real sbatch and qsub (.ci/slurm-up.sh, .ci/sge-up.sh).

One job per system carries a representative set of hostile values in its variables, its
script arguments, its launcher arguments and its run directory; the job's (fake, recording)
launcher must receive each byte for byte, and the marker file must never appear. Values no
quoting can carry are refused before anything is submitted. Unknown and malformed job ids
are UNKNOWN or refused, and a cancel that cancelled nothing says so.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
import yaml

from hpcdist.batch import jobs, submission
from hpcdist.errors import RenderError, SpecError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "batch"))
from hostile import make_tools, recorded_argv, recorded_env  # noqa: E402

LITERAL = [
    "$(touch {m})", "`touch {m}`", "'; touch {m}; '", '"; touch {m}; "', "a && touch {m}", "| touch {m}",
    "${{IFS}}touch${{IFS}}{m}", "\\", "\\$(touch {m})", "$HOME", "*", "~", "-n 99", "--wrap=touch {m}", "#",
    "#SBATCH --wrap=touch {m}", "#$ -S /bin/sh", "%j %x %%", "$JOB_ID", "a=b", "h\u00e9llo \u65e5\u672c", " ",
]
REFUSED = ["a\n#SBATCH --wrap=touch {m}", "a\n#$ -S /bin/sh", "a\rb", "a\x00b", "a\u2028b", "a\x1b[0m"]


def _spec(tmp_path: Path, system: str, values: list[str], output: str) -> Path:
    make_tools(tmp_path)
    (tmp_path / "driver.py").write_text("")
    spec = {
        "name": "hostile",
        "scheduler": system,
        "resources": {"ranks": 2, "walltime": "00:05:00"},
        "environment": {
            "python": "bin/python3",
            "vars": {"RECORD": str(tmp_path / "record"), **{f"V{i}": v for i, v in enumerate(values)}},
        },
        "launcher_args": values,
        "program": {"script": shlex.join(["driver.py", *values])},
        "output": output,
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=False, width=10**9), encoding="ascii")
    (tmp_path / "record").mkdir(exist_ok=True)
    return path


@pytest.mark.parametrize("system", [pytest.param("slurm", marks=pytest.mark.slurm),
                                    pytest.param("sge", marks=pytest.mark.sge)])
def test_hostile_values_reach_a_real_job_byte_for_byte(request, batch, tmp_path, system):
    request.getfixturevalue(system)
    marker = tmp_path / "MARKER"
    values = [v.format(m=marker) for v in LITERAL]
    spec = _spec(tmp_path, system, values, str(tmp_path / "runs" / "h%x+@-{timestamp}"))
    job = submission.submit(spec)
    st = batch.wait(job)
    output = job.output_file()
    assert output is not None and output.exists(), sorted(p.name for p in job.run_dir.iterdir())
    assert st.state == "COMPLETED", output.read_text()
    assert not marker.exists(), "a value was executed by the batch system or the job"
    record = tmp_path / "record"
    argv = recorded_argv(record)
    assert argv == ["-n", "2", *values, str(tmp_path / "bin" / "python3"), "-m", "hpcdist", "exec",
                    str(tmp_path / "driver.py"), *values]
    env = recorded_env(record)
    assert [env[f"V{i}"] for i in range(len(values))] == values
    assert env["HPCDIST_RUN_DIR"] == str(job.run_dir) and "%x+@" in job.run_dir.name
    assert env["HPCDIST_JOB_NAME"] == "hostile"


@pytest.mark.parametrize("system", [pytest.param("slurm", marks=pytest.mark.slurm),
                                    pytest.param("sge", marks=pytest.mark.sge)])
def test_values_no_quoting_can_carry_are_refused_before_submission(request, batch, tmp_path, system):
    request.getfixturevalue(system)
    marker = tmp_path / "MARKER"
    for i, value in enumerate(REFUSED):
        sub = tmp_path / f"v{i}"
        sub.mkdir()
        spec = _spec(sub, system, [value.format(m=marker)], str(sub / "runs" / "{name}-{timestamp}"))
        with pytest.raises((SpecError, RenderError)):
            submission.submit(spec)
        assert not (sub / "runs").exists() or not any((sub / "runs").iterdir())
    assert not marker.exists()
    # and through the command line: one line per problem, each naming the spec; exit 2, nothing submitted
    result = batch.cli("submit", str(spec))
    head, *problems = result.stderr.splitlines()
    assert result.returncode == 2 and head.startswith("hpcdist: error:"), result.stderr
    assert all(line.strip().startswith(f"{spec}:") for line in problems), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slurm
def test_slurm_unknown_ids(slurm, batch):
    status = batch.cli("status", "99999999", "--scheduler", "slurm")
    assert status.returncode == 4 and "UNKNOWN" in status.stdout, status.stdout + status.stderr
    cancel = batch.cli("cancel", "99999999", "--scheduler", "slurm")
    assert cancel.returncode == 4, cancel.stdout + cancel.stderr
    assert "nothing cancelled" in cancel.stderr and "cancel requested" not in cancel.stdout
    for bad in ("--me", "1.2", "1_2_3"):
        result = batch.cli("cancel", "--scheduler", "slurm", "--", bad)
        assert result.returncode == 2 and "job id" in result.stderr and "scancel" not in result.stderr, result.stderr


@pytest.mark.sge
def test_sge_unknown_and_malformed_ids(sge, batch):
    # qacct -j 1.2.3 and -j 1_2 answer with job 1's record: hpcdist never asks like that
    for bad in ("1.2.3", "1_2", "--me"):
        result = batch.cli("status", "--scheduler", "sge", "--", bad)
        assert result.returncode == 2 and "job id" in result.stderr, result.stdout + result.stderr
    status = batch.cli("status", "1.99", "--scheduler", "sge")
    assert status.returncode == 4 and "UNKNOWN" in status.stdout, status.stdout + status.stderr
    cancel = batch.cli("cancel", "99999", "--scheduler", "sge")
    assert cancel.returncode == 4 and "nothing cancelled" in cancel.stderr, cancel.stdout + cancel.stderr


@pytest.mark.parametrize("system", [pytest.param("slurm", marks=pytest.mark.slurm),
                                    pytest.param("sge", marks=pytest.mark.sge)])
def test_parsable_id_and_status_json_of_a_finished_job(request, batch, tmp_path, system):
    request.getfixturevalue(system)
    spec = _spec(tmp_path, system, ["x"], str(tmp_path / "runs" / "{name}-{timestamp}"))
    result = batch.cli("submit", str(spec), "--parsable")
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert result.stdout == f"{job_id}\n" and job_id.isdigit()
    (run_dir,) = (tmp_path / "runs").iterdir()
    batch.wait(jobs.Job.from_run_dir(run_dir))
    status = batch.cli("status", str(run_dir), "--json")
    import json

    data = json.loads(status.stdout)
    assert (data["job_id"], data["state"], data["exit_code"]) == (job_id, "COMPLETED", 0), status.stdout
    assert Path(data["output"]).is_file() and Path(data["output"]).parent == run_dir


@pytest.mark.sge
def test_one_qacct_for_several_finished_jobs(sge, batch, tmp_path, monkeypatch):
    # (SLURM keeps finished jobs in squeue for MinJobAge, 300 s by default: its one sacct is
    # counted against the run_command seam in tests/test_jobs_trust.py)
    from hpcdist import commands

    system = "sge"

    job_list = []
    for i in range(3):
        sub = tmp_path / f"j{i}"
        sub.mkdir()
        job_list.append(submission.submit(_spec(sub, system, ["x"], str(sub / "runs" / "{name}-{timestamp}"))))
    for job in job_list:
        batch.wait(job)
    real, calls = commands.run_command, []

    def counting(argv, *args, **kwargs):
        calls.append(argv[0])
        return real(argv, *args, **kwargs)

    monkeypatch.setattr(commands, "run_command", counting)
    deadline = __import__("time").monotonic() + 60
    while True:  # the jobs leave the queue (MinJobAge, or at once under Grid Engine)
        calls.clear()
        got = jobs.statuses(job_list)
        if all(st.state == "COMPLETED" for st in got) or __import__("time").monotonic() > deadline:
            break
        __import__("time").sleep(2)
    assert [st.state for st in got] == ["COMPLETED"] * 3, got
    assert calls == ["qstat", "qacct"], calls
