"""Rank 0 is O(live keys) in a real world, round after round (thread backend, and under mpiexec).

tests/mpi/memory_rounds.py runs rounds of ``map(noop, range(N))`` + gather (or futures dropped
before their results came) in one world and prints every per-key table of the client, the
scheduler, its state and each worker after each round; the last round keeps K futures.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mpiutil import run_mpi

SCRIPT = Path(__file__).resolve().parents[1] / "mpi" / "memory_rounds.py"


def _rounds(stdout: str) -> list[dict]:
    return [json.loads(line[len("ROUND "):]) for line in stdout.splitlines() if line.startswith("ROUND ")]


def _check(proc, n: int, rounds: int, k: int, drop: bool) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    got = _rounds(proc.stdout)
    assert len(got) == rounds, out[-4000:]
    for r in got:
        live = r["live"]
        assert live == (k if r["round"] == rounds - 1 and not drop else 0)
        over = {name: v for name, v in r["rank0"].items() if v > live}
        assert over == {}, (r["round"], over)
        for w in r["workers"]:
            assert sum(w.values()) <= live + 1, (r["round"], w)  # +1: the probe task itself
        ins = r["instructions"]
        # the same work every round: each task placed once, never stolen, freed once
        assert ins.get("steal", 0) <= (n if drop else 0), ins  # drop: a queued task is dropped by a steal
        assert n <= ins["compute"] <= n + 10, ins
        assert "OK" in proc.stdout


CASES = {
    "gather, 3 rounds, keep 7": (20_000, 3, 7, False),
    "gather, keep 500": (6_000, 2, 500, False),
    "dropped before done": (2_000, 2, 0, True),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_thread_backend_rounds_leave_only_live_keys(case):
    n, rounds, k, drop = CASES[case]
    argv = [sys.executable, str(SCRIPT), "thread", str(n), str(rounds), str(k)] + (["drop"] if drop else [])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    _check(proc, n, rounds, k, drop)


@pytest.mark.mpi
@pytest.mark.parametrize("drop", [False, True], ids=["gather", "dropped before done"])
def test_mpi_rounds_leave_only_live_keys(drop):
    n, rounds, k = (2_000, 2, 0) if drop else (20_000, 3, 7)
    proc = run_mpi([sys.executable, str(SCRIPT), "mpi", str(n), str(rounds), str(k)] + (["drop"] if drop else []),
                   4, timeout=240)
    _check(proc, n, rounds, k, drop)
