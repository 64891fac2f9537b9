"""SLURM: directives, launch lines and the sbatch/squeue/scancel command knowledge."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcdist.batch import Slurm, get_system, render
from hpcdist.batch.slurm import slurm_time
from hpcdist.errors import RenderError, SubmitError
from hpcdist.spec.model import JobSpec, load_spec


def render_at(spec: JobSpec, system: str | None = None, timestamp: str = "T") -> str:
    """The job script of ``spec`` writing into its run directory for ``timestamp``."""
    return render(spec, system, spec.run_dir(timestamp))


def test_directives_of_the_full_spec(project: Path) -> None:
    spec = load_spec(project / "full.yaml")
    lines = Slurm().directives(spec, Path("/runs/x"))
    assert lines == [
        "#SBATCH --job-name=full-job.1",
        "#SBATCH --ntasks=8",
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --mem=1431M",  # 1500 MB = 1430.5 MiB, rounded up
        "#SBATCH --time=1-02:03:04",
        "#SBATCH --partition=short",
        "#SBATCH --account=proj42",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --output=/runs/x/slurm-%j.out",
        "#SBATCH --signal=B:USR1@600",
        "#SBATCH --constraint=haswell",
        "#SBATCH --exclusive",
    ]


def test_directives_write_into_the_spec_run_dir(project: Path) -> None:
    spec = load_spec(project / "job-slurm.yaml")
    out = [x for x in Slurm().directives(spec, spec.run_dir("T")) if x.startswith("#SBATCH --output=")]
    assert out and out[0].startswith(f"#SBATCH --output={project}/runs/pi-slurm-")


def test_minimal_directives_leave_out_what_is_not_asked(project: Path) -> None:
    spec = load_spec(project / "job.yaml", ("resources.memory=null",))
    text = "\n".join(Slurm().directives(spec, Path("/r")))
    for absent in ("--nodes", "--ntasks-per-node", "--mem", "--partition", "--account", "--gpus"):
        assert absent not in text
    assert "--time=00:10:00" in text and "--signal=B:USR1@60" in text


@pytest.mark.parametrize("seconds, text", [(60, "00:01:00"), (5400, "01:30:00"), (86400 + 61, "1-00:01:01")])
def test_slurm_time(seconds: int, text: str) -> None:
    assert slurm_time(seconds) == text


def test_launcher_auto_is_the_mpiexec_beside_the_interpreter(project: Path) -> None:
    script = render_at(load_spec(project / "job.yaml"), "slurm", timestamp="T")
    assert 'MPIEXEC="$(dirname "$PYTHON")/mpiexec"' in script
    assert f'"$MPIEXEC" "${{MPIEXEC_FT[@]}}" -n "$SLURM_NTASKS" "$PYTHON" -m hpcdist exec {project}/pi.py --samples 1000000 &' in script
    assert "srun" not in script


def test_launcher_srun_uses_pmi2_and_quotes_arguments(project: Path) -> None:
    script = render_at(load_spec(project / "full.yaml"), "slurm", timestamp="T")
    line = next(x for x in script.splitlines() if x.startswith("srun "))
    assert line == (f"srun --mpi=pmi2 --kill-on-bad-exit=0 --cpu-bind=cores \"$PYTHON\" -m hpcdist exec {project}/driver.py"
                    " --samples 1e8 'two words' &")
    assert "MPIEXEC" not in script


def test_pipeline_runs_hpcdist_run_and_missing_walltime_is_refused(project: Path) -> None:
    spec = load_spec(project / "job.yaml", ("program.script=null", "program.pipeline={tasks: {a: {call: 'os:getcwd'}}}"))
    line = next(x for x in render_at(spec, "slurm").splitlines() if x.startswith('"$MPIEXEC"'))
    assert line == (f'"$MPIEXEC" "${{MPIEXEC_FT[@]}}" -n "$SLURM_NTASKS" "$PYTHON" -m hpcdist run {project}/job.yaml'
                    ' --run-dir "$HPCDIST_RUN_DIR" &')
    spec = load_spec(project / "job.yaml", ("resources.walltime=null",))
    with pytest.raises(RenderError, match="resources.walltime: required for slurm"):
        render_at(spec, "slurm")


def test_render_defaults_to_the_spec_scheduler_and_local_has_no_script(project: Path) -> None:
    assert render_at(load_spec(project / "job-slurm.yaml"), timestamp="T").count("#SBATCH --ntasks=8") == 1
    with pytest.raises(RenderError, match="scheduler local has no job script"):
        render_at(load_spec(project / "job.yaml"))
    with pytest.raises(RenderError, match="unknown batch system 'pbs'"):
        get_system("pbs")


def test_run_dir_with_shell_characters_cannot_reach_a_directive(project: Path) -> None:
    spec = load_spec(project / "job.yaml", ("output=runs/a b",))
    with pytest.raises(RenderError, match="cannot appear in a batch directive"):
        render_at(spec, "slurm")


def test_commands() -> None:
    s = Slurm()
    assert s.submit_argv("/x/job.sh") == ["sbatch", "--parsable", "/x/job.sh"]
    assert s.parse_job_id("13\n") == "13"
    assert s.parse_job_id("42;cluster\n") == "42"
    assert s.parse_job_id("sbatch: warning: something\n77\n") == "77"
    with pytest.raises(SubmitError, match="no job id"):
        s.parse_job_id("Submitted batch job\n")
    assert s.cancel_argv("13") == ["scancel", "-v", "13"]
