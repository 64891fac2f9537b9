"""The job-script templates ship inside the wheel: build it, install it into a fresh venv
and render there (no source tree on the path)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def sh(argv: list[str], cwd: Path, timeout: float = 120) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


def test_wheel_ships_the_templates_and_renders(tmp_path: Path) -> None:
    # build from a copy so the shared tree gets no build/ or egg-info litter
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", "runs")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, src / name)
    for name in ("hpcdist", "jobscripts"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    sh([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp_path / "dist", src], tmp_path)
    wheels = list((tmp_path / "dist").glob("hpcdist-*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as whl:
        names = set(whl.namelist())
    missing = {"hpcdist/jobscripts/slurm.sh", "hpcdist/jobscripts/sge.sh"} - names
    assert not missing, (
        f"the wheel lacks {sorted(missing)}: [tool.setuptools.packages.find] does not see the package-dir "
        "mapping of hpcdist.jobscripts, so pyproject.toml must name that package explicitly"
    )

    venv = tmp_path / "venv"
    sh([sys.executable, "-m", "venv", "--system-site-packages", venv], tmp_path)
    python = venv / "bin" / "python"
    sh([python, "-m", "pip", "install", "--no-deps", "--quiet", wheels[0]], tmp_path)

    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(REPO / "examples" / "pi" / "job-sge.yaml", work / "job.yaml")
    (work / "pi.py").write_text("print('placeholder driver')\n")
    where = sh([python, "-c", "import importlib.resources as r, hpcdist; "
                "print(hpcdist.__file__); print(r.files('hpcdist.jobscripts').joinpath('slurm.sh'))"], work)
    for line in where.splitlines():
        assert line.startswith(str(venv)), f"not imported from the installed wheel: {line}"
    script = sh([python, "-m", "hpcdist", "render", "job.yaml"], work)
    assert script.startswith("#!/bin/bash\n#$ -N pi-sge\n")
    assert f"exec {work}/pi.py --samples 100000000 &" in script
    script = sh([venv / "bin" / "hpcdist", "render", "job.yaml", "--scheduler", "slurm"], work)
    assert "#SBATCH --signal=B:USR1@300" in script
