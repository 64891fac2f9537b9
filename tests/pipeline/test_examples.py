"""The pipeline examples run end to end (in a scratch copy, so the repository stays clean)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_run import digest, manifest, run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def copy(tmp_path: Path, name: str) -> Path:
    shutil.copytree(EXAMPLES / name, tmp_path / name, ignore=shutil.ignore_patterns("runs", "data", "__pycache__"))
    return tmp_path / name / "job.yaml"


def test_wordcount(tmp_path: Path) -> None:
    code, out, err, run_dir = run(copy(tmp_path, "wordcount"), "--backend", "thread", "--workers", "2")
    assert code == 0, err
    total = json.loads((run_dir / "outputs/total.json").read_text())
    assert sum(total.values()) == 12 * 2000 and list(total) == sorted(total)
    assert len(list((tmp_path / "wordcount/data").glob("part-*.txt"))) == 12
    assert len([t for t in manifest(run_dir)["tasks"] if t.startswith("counts[")]) == 12


@pytest.mark.mpi
def test_montecarlo_pi_is_identical_on_every_backend(tmp_path: Path) -> None:
    spec = copy(tmp_path, "montecarlo_pi")
    hashes, values = set(), set()
    for launch in (("--backend", "local"), ("--backend", "process", "--workers", "2"), ("-n", "3")):
        code, out, err, run_dir = run(spec, *launch)
        assert code == 0, err
        hashes.add(digest(out))
        values.add((run_dir / "outputs/estimate.json").read_text())
    assert len(hashes) == 1 and len(values) == 1
    assert abs(json.loads(values.pop())["pi"] - 3.14159) < 0.01


def test_array_tree_keeps_data_where_it_is(tmp_path: Path) -> None:
    import numpy as np

    spec = copy(tmp_path, "array_tree")
    code, out, err, run_dir = run(spec, "--backend", "thread", "--workers", "2")
    assert code == 0, err
    total = np.load(run_dir / "outputs/total.npy")
    expected = sum(np.sin(np.arange(500000, dtype=np.float64) + i) for i in range(8))
    assert np.allclose(total, expected)
    m = manifest(run_dir)
    t = m["transfer"]
    assert t["input_bytes"] > 7 * 2 * 4_000_000  # 7 sums of two 4 MB arrays, plus the summary
    # the report agrees with where each task ran, and not everything moved: results stayed put
    tasks = m["tasks"]
    moved = sum(tasks[d]["bytes"] for task in tasks.values() for d in task["inputs"]
                if tasks[d]["rank"] != task["rank"])
    assert moved == t["moved_bytes"] < t["input_bytes"]
    report = subprocess.run([sys.executable, str(tmp_path / "array_tree/report.py"), str(run_dir)],
                            capture_output=True, text=True, timeout=30)
    assert report.returncode == 0 and "moved between ranks" in report.stdout
