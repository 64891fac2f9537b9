"""Template mechanics: ${lowercase} placeholders only, site templates, unknown placeholders."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcdist.batch import Slurm, render
from hpcdist.batch.script import placeholders
from hpcdist.errors import RenderError
from hpcdist.spec.model import JobSpec, load_spec
from hpcdist.spec.template import PLACEHOLDERS, JobTemplate


def render_at(spec: JobSpec, system: str | None = None, timestamp: str = "T") -> str:
    """The job script of ``spec`` writing into its run directory for ``timestamp``."""
    return render(spec, system, spec.run_dir(timestamp))


def test_only_braced_lowercase_names_are_placeholders() -> None:
    text = 'echo ${name} $name ${NAME} $((1 + 2)) $! "$(date)" $$'
    assert JobTemplate(text).substitute(name="X") == 'echo X $name ${NAME} $((1 + 2)) $! "$(date)" $$'


def test_a_site_template_gets_the_same_placeholders(project: Path) -> None:
    site = project / "site"
    site.mkdir()
    (site / "slurm.sh").write_text("#!/bin/bash\n${directives}\n#SBATCH --qos=high\nRANKS=${ranks}\n${launch} &\nwait\n")
    spec = load_spec(project / "job-slurm.yaml", ("template=site/slurm.sh",))
    script = render_at(spec, timestamp="T")
    assert spec.template == site / "slurm.sh"
    assert "#SBATCH --job-name=pi-slurm\n" in script and "#SBATCH --qos=high\nRANKS=8\n" in script
    assert '"$MPIEXEC" "${MPIEXEC_FT[@]}" -n "$SLURM_NTASKS"' in script


def test_unknown_placeholder_is_an_error_listing_the_available_ones(project: Path) -> None:
    from hpcdist.errors import SpecError

    (project / "bad.sh").write_text("#!/bin/bash\necho ${jobname}\n")
    message = r"bad\.sh: unknown placeholder \$\{jobname\}; available: .*\$\{job_name\}"
    with pytest.raises(SpecError, match=message):  # validation refuses it for a slurm/sge spec
        load_spec(project / "job-slurm.yaml", ("template=bad.sh",))
    spec = load_spec(project / "job-slurm.yaml", ("template=bad.sh", "scheduler=local"))
    with pytest.raises(RenderError, match=message):
        render_at(spec, "slurm")


def test_missing_template_is_a_spec_error(project: Path) -> None:
    from hpcdist.errors import SpecError

    with pytest.raises(SpecError, match="template: file 'nope.sh' not found"):
        load_spec(project / "job-slurm.yaml", ("template=nope.sh",))


def test_documented_placeholders_are_the_real_ones(project: Path) -> None:
    spec = load_spec(project / "job-slurm.yaml")
    assert set(placeholders(Slurm(), spec, Path("/r"))) == set(PLACEHOLDERS)
    docs = (Path(__file__).resolve().parents[2] / "docs" / "batch.md").read_text()
    assert [p for p in PLACEHOLDERS if f"`${{{p}}}`" not in docs] == []


def test_builtin_templates_use_every_placeholder_they_need() -> None:
    root = Path(__file__).resolve().parents[2] / "jobscripts"
    for name in ("slurm.sh", "sge.sh"):
        text = (root / name).read_text()
        for needed in ("directives", "exports", "run_dir", "workdir", "python", "launch", "find_launcher"):
            assert f"${{{needed}}}" in text, (name, needed)
    assert "${warning_timer}" in (root / "sge.sh").read_text()


def test_setup_lines_must_be_single_lines(project: Path) -> None:
    from hpcdist.errors import SpecError

    with pytest.raises(SpecError, match="environment.setup: item 0"):
        load_spec(project / "job.yaml", ('environment.setup=["a\\nb"]',))


def test_the_spec_names_exactly_the_registered_batch_systems():
    # the spec may not import batch (data flows spec -> render), so the names live twice: keep them equal
    from hpcdist.batch import SYSTEMS
    from hpcdist.spec.keys import BATCH_SYSTEMS

    assert sorted(SYSTEMS) == sorted(BATCH_SYSTEMS)
    assert all(cls.name == name for name, cls in SYSTEMS.items())
