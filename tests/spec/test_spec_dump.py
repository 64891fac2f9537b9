"""The resolved spec written back (spec.yaml in a run directory) reads back as the same spec."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from hpcdist.spec.dump import memory_text, spec_to_yaml
from hpcdist.spec.keys import parse_memory
from hpcdist.spec.model import JobSpec, load_spec

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*/*.yaml"))
RENDER_SPECS = sorted((REPO / "tests" / "batch" / "specs").glob("*.yaml"))


def round_trip(spec: JobSpec, folder: Path) -> JobSpec:
    path = folder / "spec.yaml"
    path.write_text(spec_to_yaml(spec), encoding="utf-8")
    again = load_spec(path)
    return dataclasses.replace(again, path=spec.path, source=spec.source)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_example_spec_reads_back_the_same(path: Path, tmp_path: Path) -> None:
    spec = load_spec(path)
    assert round_trip(spec, tmp_path) == spec


@pytest.mark.parametrize("path", RENDER_SPECS, ids=lambda p: p.name)
def test_every_test_spec_reads_back_the_same(path: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(path, project / path.name)
    for driver in ("pi.py", "driver.py"):
        (project / driver).write_text("print('placeholder driver')\n")
    spec = load_spec(project / path.name)
    (tmp_path / "run").mkdir()
    assert round_trip(spec, tmp_path / "run") == spec


OVERRIDES = [
    ("resources.memory=1.5GB",),
    ("resources.memory=1000KiB", "resources.walltime=1-02:03:04", "resources.grace=60"),
    ("resources.directives=[--constraint=haswell, --exclusive]", "resources.queue=0042"),
    ("environment.vars={A: '1', B: 'x y'}", "environment.modules=[gcc/12]", "environment.setup=['echo \"$HOME\"']"),
    ("program.script=driver.py --n 3 'two words'", "launcher=srun", "launcher_args=[--bind-to, core]"),
    ("template=site/slurm.sh", "output=out/{name}", "scheduler=sge", "launcher=mpiexec"),
]


@pytest.mark.parametrize("overrides", OVERRIDES, ids=lambda o: o[0])
def test_specs_with_every_kind_of_value_read_back_the_same(project: Path, overrides: tuple[str, ...],
                                                          tmp_path: Path) -> None:
    path = project / "job.yaml"
    path.write_text("name: dump\nscheduler: slurm\nresources: {ranks: 4, walltime: '00:10:00'}\n"
                    "program: {script: driver.py}\n", encoding="utf-8")
    spec = load_spec(path, overrides)
    (tmp_path / "run").mkdir()
    assert round_trip(spec, tmp_path / "run") == spec


@pytest.mark.parametrize("size", [1, 999, 1000, 1500 * 10**6, 2**30, 3 * 2**40, 1536 * 2**20])
def test_memory_is_written_exactly(size: int) -> None:
    assert parse_memory(memory_text(size)) == size
