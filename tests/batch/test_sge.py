"""Grid Engine: directives with a parallel environment, the warning timer, qsub/qstat/qdel."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcdist.batch import GridEngine, render
from hpcdist.batch.sge import sge_time
from hpcdist.errors import RenderError, SubmitError
from hpcdist.spec.model import JobSpec, load_spec


def render_at(spec: JobSpec, system: str | None = None, timestamp: str = "T") -> str:
    """The job script of ``spec`` writing into its run directory for ``timestamp``."""
    return render(spec, system, spec.run_dir(timestamp))


def test_directives_of_the_example(project: Path) -> None:
    spec = load_spec(project / "job-sge.yaml")
    assert GridEngine().directives(spec, Path("/runs/x")) == [
        "#$ -N pi-sge",
        "#$ -S /bin/bash",
        "#$ -cwd",
        "#$ -pe mpi 4",
        "#$ -l h_rt=1:00:00",
        "#$ -l mem_free=1024M",  # 4 GiB per node over 4 slots
        "#$ -q all.q",
        "#$ -o /runs/x/sge-$JOB_ID.out",
        "#$ -j y",
        "#$ -notify",
    ]


def test_pe_name_slots_memory_resource_and_inherit_env(project: Path) -> None:
    spec = load_spec(project / "full.yaml", ("launcher=auto", "resources.gpus_per_node=0"))
    lines = GridEngine().directives(spec, Path("/r"))
    assert "#$ -V" in lines
    assert "#$ -pe orte 16" in lines  # 8 ranks * 2 cpus
    assert "#$ -l h_vmem=179M" in lines  # 1500 MB per node / (4 ranks * 2 cpus), rounded up
    assert "#$ -l h_rt=26:03:04" in lines
    assert "#$ -A proj42" in lines
    assert lines[-3:-1] == ["#$ --constraint=haswell", "#$ --exclusive"]
    assert lines[-1].startswith("# nodes / ranks_per_node")
    script = render_at(spec, "sge", timestamp="T")
    assert '"$MPIEXEC" "${MPIEXEC_FT[@]}" -n "$((NSLOTS / 2))" --cpu-bind=cores "$PYTHON"' in script


def test_no_v_unless_asked(project: Path) -> None:
    assert "#$ -V" not in GridEngine().directives(load_spec(project / "job-sge.yaml"), Path("/r"))


def test_launch_and_warning_timer(project: Path) -> None:
    script = render_at(load_spec(project / "job-sge.yaml"), "sge", timestamp="T")
    assert f'"$MPIEXEC" "${{MPIEXEC_FT[@]}}" -n "$NSLOTS" "$PYTHON" -m hpcdist exec {project}/pi.py --samples 100000000 &' in script
    # h_rt 3600 s, grace 300 s: USR1 at 3300 s
    assert "  sleep 3300 &\n" in script and 'wait "$TIMER_SLEEP" && kill -s USR1 "$$"' in script
    assert "trap 'forward USR1' USR1 USR2" in script
    assert "s_rt" not in script


@pytest.mark.parametrize("override, message", [
    ("launcher=srun", "srun exists only under SLURM"),
    ("resources.gpus_per_node=2", "Grid Engine has no standard GPU request"),
])
def test_refusals(project: Path, override: str, message: str) -> None:
    spec = load_spec(project / "job-slurm.yaml", (override,))
    with pytest.raises(RenderError, match=message):
        render_at(spec, "sge")


@pytest.mark.parametrize("seconds, text", [(10, "0:00:10"), (5400, "1:30:00"), (90000, "25:00:00")])
def test_sge_time(seconds: int, text: str) -> None:
    assert sge_time(seconds) == text


def test_commands() -> None:
    g = GridEngine()
    assert g.submit_argv(Path("/x/job.sh")) == ["qsub", "-terse", "/x/job.sh"]
    assert g.parse_job_id("27\n") == "27"
    assert g.parse_job_id("27.1-4:1\n") == "27"
    with pytest.raises(SubmitError, match="no job id"):
        g.parse_job_id('Your job 27 ("x") has been submitted\n')
    assert g.cancel_argv("27") == ["qdel", "27"]
