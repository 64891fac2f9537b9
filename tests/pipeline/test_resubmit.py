"""submit --resume and resubmit: N, against a faked run_command (no batch system needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hpcdist import commands
from hpcdist.batch import jobs, render, submission
from hpcdist.cli import main
from hpcdist.commands import CommandResult
from hpcdist.errors import CommandError, RunDirError, SpecError, SubmitError
from hpcdist.spec.model import JobSpec, load_spec

SLURM = ["scheduler=slurm", "resources.walltime=00:05:00"]
RESUBMIT = """\
    tasks:
      numbers: {call: make, args: [4]}
      squares: {call: square, map: numbers}
    resubmit: 1
"""


def render_at(spec: JobSpec, system: str | None = None, timestamp: str = "T") -> str:
    """The job script of ``spec`` writing into its run directory for ``timestamp``."""
    return render(spec, system, spec.run_dir(timestamp))


class Batch:
    """Stands in for run_command: sbatch hands out ids 100, 101, ...; squeue answers ``state``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, state: str = "COMPLETED", reject: bool = False) -> None:
        self.calls: list[tuple[tuple[str, ...], dict[str, str] | None]] = []
        self.scripts: list[str] = []
        self.state, self.reject, self.next_id = state, reject, 100
        monkeypatch.setattr(commands, "run_command", self)

    def __call__(self, argv, timeout=60.0, *, check=True, input=None, env=None) -> CommandResult:
        argv = tuple(str(a) for a in argv)
        assert timeout and timeout > 0
        self.calls.append((argv, env))
        if argv[0] == "sbatch":
            self.scripts.append(Path(argv[-1]).read_text())
            if self.reject:
                return CommandResult(argv, 1, "", "sbatch: error: invalid partition specified: nope")
            self.next_id += 1
            return CommandResult(argv, 0, f"{self.next_id - 1}\n", "")
        if argv[0] == "squeue":
            ids = argv[-1].split("=", 1)[1].split(",")
            return CommandResult(argv, 0, "".join(f"{i}|{self.state}|None\n" for i in ids), "")
        if argv[0] == "qsub":
            self.next_id += 1
            return CommandResult(argv, 0, f"{self.next_id - 1}\n", "")
        if argv[0] == "qstat":
            head = "job-ID prior name user state submit/start at queue slots\n" + "-" * 40 + "\n"
            return CommandResult(argv, 0, head + f"  100 0.5 demo root {self.state} 11/22/2026 17:47:50 all.q@vm 3\n", "")
        if argv[0] == "scancel":
            return CommandResult(argv, 0, "", "")
        raise CommandError(f"{argv[0]}: command not found")


def cli(*argv: str) -> int:
    try:
        main(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.fixture
def first(project, monkeypatch) -> jobs.Job:
    """A pipeline with resubmit: 1, submitted once (job 100)."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("JOB_ID", raising=False)
    Batch(monkeypatch)
    return submission.submit(str(project(RESUBMIT)), overrides=SLURM)


# --- the key ------------------------------------------------------------------------------------


def test_resubmit_is_a_pipeline_key_with_a_default_and_a_minimum(project) -> None:
    spec = project(RESUBMIT)
    assert load_spec(spec, SLURM).program.parsed.resubmit == 1
    assert load_spec(spec, ["program.pipeline.resubmit=null"]).program.parsed.resubmit == 0
    with pytest.raises(SpecError) as info:
        load_spec(spec, ["program.pipeline.resubmit=-2"])
    assert "program.pipeline.resubmit: expected an integer >= 0, got -2" in str(info.value)
    spec.write_text(spec.read_text().replace("resubmit: 1", "resubmit: many"))
    with pytest.raises(SpecError, match=r"job\.yaml:9:15: program\.pipeline\.resubmit: expected an integer"):
        load_spec(spec)


def test_only_pipelines_with_resubmit_get_the_resubmission_lines(project) -> None:
    spec = project(RESUBMIT)
    for system in ("slurm", "sge"):
        with_it = render_at(load_spec(spec, SLURM), system, timestamp="T")
        without = render_at(load_spec(spec, [*SLURM, "program.pipeline.resubmit=0"]), system, timestamp="T")
        assert "--resubmit" not in without and 'if [ "$RC" = 5 ]' not in without
        block = with_it.split("exit_code\"\n", 1)[1]  # after the exit status is written
        assert block.startswith('\n# Stopped at the walltime (status 5)')
        assert '"$PYTHON" -m hpcdist submit --resume "$HPCDIST_RUN_DIR" --resubmit' in block
        assert with_it.replace(block, "") == without.replace(without.split("exit_code\"\n", 1)[1], "")


# --- submit --resume -----------------------------------------------------------------------------


def test_resume_submits_a_new_script_in_the_same_run_dir_and_keeps_a_history(first, project, monkeypatch) -> None:
    batch = Batch(monkeypatch)
    batch.next_id = 200
    (first.run_dir / "objects").mkdir()
    (first.run_dir / "objects" / "kept.meta.json").write_text("{}")
    job = submission.submit(str(project(RESUBMIT)), overrides=SLURM, resume=first.run_dir)
    assert job.run_dir == first.run_dir and job.job_id == "200"
    assert job.script == first.run_dir / "job-2.sh" and job.script.stat().st_mode & 0o111
    assert batch.calls[0][0] == ("squeue", "--noheader", "--states=all", "--format=%i|%T|%r", "--jobs=100")
    assert batch.calls[1][0] == ("sbatch", "--parsable", str(first.run_dir / "job-2.sh"))
    assert f"--output={first.run_dir}/slurm-%j.out" in batch.scripts[0]
    assert (first.run_dir / "job.sh").exists() and (first.run_dir / "objects" / "kept.meta.json").exists()
    record = json.loads((first.run_dir / "job.json").read_text())
    assert [(j["job_id"], j["how"]) for j in record["jobs"]] == [("100", "submit"), ("200", "resume")]
    assert record["jobs"][1]["after"] == "100" and record.get("resubmits", 0) == 0
    assert jobs.Job.from_run_dir(first.run_dir).job_id == "200"  # status and cancel follow the newest
    assert len(list(first.run_dir.parent.iterdir())) == 1  # no new run directory


def test_resume_without_spec_uses_the_run_dirs_resolved_spec(first, monkeypatch, capsys) -> None:
    Batch(monkeypatch).next_id = 300
    assert cli("submit", "--resume", str(first.run_dir)) == 0
    out = capsys.readouterr().out
    assert f"run directory: {first.run_dir} (resumed: job-2.sh)" in out and "job id: 300" in out
    assert cli("submit") == 2
    assert "missing argument SPEC (or --resume RUN_DIR)" in capsys.readouterr().err


def test_rejected_resume_leaves_the_run_dir_as_it_was(first, project, monkeypatch, capsys) -> None:
    before = snapshot(first.run_dir)
    Batch(monkeypatch, reject=True)
    with pytest.raises(SubmitError, match="sbatch rejected the job .*invalid partition specified"):
        # a changed spec would have replaced spec.yaml: it is put back
        submission.submit(str(project(RESUBMIT)), overrides=[*SLURM, "resources.walltime=00:09:00"], resume=first.run_dir)
    assert snapshot(first.run_dir) == before


def test_resume_refused_while_the_newest_job_still_runs_or_for_a_script_spec(first, monkeypatch, tmp_path) -> None:
    Batch(monkeypatch, state="RUNNING")
    with pytest.raises(RunDirError, match="job 100 is still RUNNING there; wait for it or cancel it"):
        submission.submit(None, resume=first.run_dir)
    Batch(monkeypatch)
    (tmp_path / "s.py").write_text("")
    (tmp_path / "s.yaml").write_text("name: s\nscheduler: slurm\nresources: {ranks: 2, walltime: 5}\n"
                                     "program: {script: s.py}\n")
    with pytest.raises(SpecError, match="runs a script, not a pipeline; there is nothing to resume"):
        submission.submit(str(tmp_path / "s.yaml"), resume=first.run_dir)
    with pytest.raises(RunDirError, match="not a pipeline run directory"):
        submission.submit(None, resume=tmp_path)
    assert cli("submit", "--resume", str(first.run_dir), "--dry-run") == 2


def test_status_follows_the_newest_job_of_the_run(first, project, monkeypatch) -> None:
    batch = Batch(monkeypatch, state="RUNNING")
    batch.next_id = 101
    job = jobs.Job.from_run_dir(first.run_dir)
    assert job.status().job_id == "100"
    batch.state = "COMPLETED"
    submission.submit(None, resume=first.run_dir)  # job 101 continues the run
    batch.state = "PENDING"
    st = job.status()  # the same Job object, as in `hpcdist status --watch`
    assert (st.job_id, st.state, job.job_id) == ("101", "PENDING", "101")


# --- resubmit: N (the job script's `hpcdist submit --resume RUN_DIR --resubmit`) -----------------


def test_automatic_resubmission_is_counted_and_stops_at_the_limit(first, monkeypatch) -> None:
    batch = Batch(monkeypatch)
    batch.next_id = 500
    monkeypatch.setenv("SLURM_JOB_ID", "100")
    monkeypatch.setenv("SLURM_JOB_END_TIME", "1700000000")
    monkeypatch.setenv("SLURM_CONF", "/etc/slurm/slurm.conf")
    job = submission.submit(None, resume=first.run_dir, automatic=True)
    assert job.job_id == "500" and not [c for c in batch.calls if c[0][0] == "squeue"]
    env = batch.calls[-1][1]
    assert env is not None and "SLURM_JOB_ID" not in env and "SLURM_JOB_END_TIME" not in env
    assert env["SLURM_CONF"] == "/etc/slurm/slurm.conf" and env["PATH"] == os.environ["PATH"]
    record = json.loads((first.run_dir / "job.json").read_text())
    assert record["resubmits"] == 1 and record["jobs"][-1]["how"] == "resubmit"
    monkeypatch.setenv("SLURM_JOB_ID", "500")
    before = snapshot(first.run_dir)
    assert cli("submit", "--resume", str(first.run_dir), "--resubmit") == 3  # resubmit: 1 is used up
    assert snapshot(first.run_dir) == before and len(batch.calls) == 1
    # a manual resume is still possible, and does not count
    monkeypatch.delenv("SLURM_JOB_ID")
    assert submission.submit(None, resume=first.run_dir).job_id == "501"
    assert json.loads((first.run_dir / "job.json").read_text())["resubmits"] == 1


def test_no_automatic_resubmission_after_a_cancel_or_from_a_superseded_job(first, monkeypatch, capsys) -> None:
    Batch(monkeypatch)
    monkeypatch.setenv("SLURM_JOB_ID", "99")
    with pytest.raises(SubmitError, match="job 99 is no longer the run's newest job"):
        submission.submit(None, resume=first.run_dir, automatic=True)
    monkeypatch.setenv("SLURM_JOB_ID", "100")
    assert cli("cancel", str(first.run_dir)) == 0
    with pytest.raises(SubmitError, match="job 100 was cancelled"):
        submission.submit(None, resume=first.run_dir, automatic=True)
    assert not (first.run_dir / "job-2.sh").exists()


def test_docs_describe_every_pipeline_key_of_the_key_table() -> None:
    from hpcdist.spec.keys import PIPELINE, TASK

    docs = (Path(__file__).resolve().parents[2] / "docs" / "pipelines.md").read_text()
    keys = [k.name for k in PIPELINE.children] + [k.name for k in TASK.children]
    assert [k for k in keys if f"| `{k}` |" not in docs] == []


def test_no_automatic_resubmission_of_a_grid_engine_job_being_deleted(project, monkeypatch) -> None:
    # qdel with -notify sends USR2 first, which the script forwards as the walltime warning
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    batch = Batch(monkeypatch, state="dr")
    first = submission.submit(str(project(RESUBMIT)), overrides=["scheduler=sge", "resources.walltime=00:05:00"])
    assert first.job_id == "100"
    monkeypatch.setenv("JOB_ID", "100")
    with pytest.raises(SubmitError, match="job 100 is being deleted"):
        submission.submit(None, resume=first.run_dir, automatic=True)
    batch.state = "r"
    assert submission.submit(None, resume=first.run_dir, automatic=True).job_id == "101"
    assert [c[0][0] for c in batch.calls] == ["qsub", "qstat", "qstat", "qsub"]


def test_a_run_dir_made_by_hpcdist_run_gets_its_first_batch_job(project, monkeypatch, tmp_path) -> None:
    Batch(monkeypatch)
    run_dir = tmp_path / "runs" / "local"
    (run_dir / "objects").mkdir(parents=True)
    job = submission.submit(str(project(RESUBMIT)), overrides=SLURM, resume=run_dir)
    assert job.script == run_dir / "job.sh" and job.job_id == "100"
    record = json.loads((run_dir / "job.json").read_text())
    assert [(j["job_id"], j["how"], j["after"]) for j in record["jobs"]] == [("100", "resume", None)]
    assert load_spec(run_dir / "spec.yaml").program.parsed.resubmit == 1
