"""The runner in this process on the thread backend: deadline, progress display, reuse."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from hpcdist.exitcodes import ExitCode
from hpcdist.pipeline.progress import Progress, summary
from hpcdist.pipeline.runner import Deadline, Runner
from hpcdist.runtime.client import Client
from hpcdist.spec.model import load_spec


@pytest.fixture
def client():
    with Client(backend="thread", workers=2) as c:
        yield c


def test_deadline_from_the_environment() -> None:
    assert Deadline.from_environment(600, {"SLURM_JOB_END_TIME": "2000000000"}).end == 2e9
    d = Deadline.from_environment(600, {"SLURM_JOB_ID": "4", "SLURM_JOB_START_TIME": "1000"})
    assert d.end == 1600
    assert Deadline.from_environment(600, {}).end is None  # not in a batch job: no limit
    assert Deadline(None).left() == float("inf")
    assert Deadline(1000.0, margin=10).left(now=900.0) == 90.0


def test_no_task_starts_when_its_expected_duration_exceeds_the_time_left(project, client, tmp_path: Path) -> None:
    spec = load_spec(project("""\
        tasks:
          naps: {call: nap, map: [1, 2, 3, 4, 5, 6], kwargs: {seconds: 0.6}}
        """))
    deadline = Deadline(time.time() + 1.0, margin=0.0)  # room for the first round only
    result = Runner(client, spec.program.parsed, tmp_path / "run", deadline=deadline).run()
    assert result.code == ExitCode.WALLTIME and result.reason == "walltime"
    assert result.counts["done"] == 2 and result.counts["not_run"] == 4


def test_results_are_reused_and_recomputed_only_when_inputs_change(project, client, tmp_path: Path) -> None:
    path = project()
    first = Runner(client, load_spec(path).program.parsed, tmp_path / "run").run()
    assert first.code == ExitCode.OK and first.counts["done"] == 17
    again = Runner(client, load_spec(path).program.parsed, tmp_path / "run").run()
    assert again.counts == {"cached": 17, "unexpanded": 0} and again.output_hash == first.output_hash
    changed = Runner(client, load_spec(path, ["program.pipeline.tasks.scaled.kwargs.factor=4"]).program.parsed,
                     tmp_path / "run").run()
    assert changed.counts == {"cached": 10, "done": 7, "unexpanded": 0}  # scaled[*] and sum are recomputed
    assert changed.output_hash != first.output_hash


def test_cache_false_always_recomputes(project, client, tmp_path: Path) -> None:
    pipeline = load_spec(project(), ["program.pipeline.tasks.numbers.cache=false"]).program.parsed
    Runner(client, pipeline, tmp_path / "run").run()
    again = Runner(client, pipeline, tmp_path / "run").run()
    assert again.counts.get("cached", 0) == 3  # only the independent literal map is reused


def test_tuple_outputs_can_be_mapped_and_arrays_are_saved_as_npy(project, client, tmp_path: Path) -> None:
    import numpy as np

    spec = load_spec(project("""\
        tasks:
          p: {call: pair, args: [7]}
          sq: {call: square, map: p}
          arr: {call: arrays, map: [1, 2], kwargs: {n: 5}}
          both: {call: add, args: [{ref: arr}, 0]}
        save: [sq, arr]
        """, "t.yaml"))
    result = Runner(client, spec.program.parsed, tmp_path / "run").run()
    assert result.code == ExitCode.TASKS_FAILED
    assert "TypeError" in result.manifest["tasks"]["both"]["error"]
    assert np.array_equal(np.load(tmp_path / "run/outputs/arr/00001.npy"), np.arange(5.0) * 2)
    assert (tmp_path / "run/outputs/sq/00000.json").read_text().strip() == "49"


def test_progress_lines_and_bar() -> None:
    counts = {"done": 3, "cached": 1, "failed": 1, "waiting": 5, "unexpanded": 1}
    finished, total, text = summary(counts, 2, 65.0)
    assert (finished, total) == (5, 11)
    assert text.startswith("done 4/11, reused 1, failed 1, running 2, elapsed 0:01:05, eta 0:01:18")
    plain = io.StringIO()
    p = Progress(plain, interactive=False, interval=0)
    p(counts, 2, 65.0)
    p(counts, 2, 66.0)
    p.close(counts, 0, 70.0)
    lines = plain.getvalue().splitlines()
    assert lines[0].startswith("hpcdist: progress: done 4/11") and len(lines) == 3
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    bar = Terminal()
    p = Progress(bar)
    p(counts, 2, 65.0)
    p.close(counts, 0, 70.0)
    assert "done 4/11" in bar.getvalue() and "%" in bar.getvalue()


def test_a_timeout_is_enforced_while_other_tasks_keep_finishing(project, client, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # thread workers get no SIGALRM: rank 0 gives up on the task, even while results keep arriving
    from hpcdist.pipeline import runner

    monkeypatch.setattr(runner, "TIMEOUT_SLACK", 0.2)
    spec = load_spec(project("""\
        tasks:
          slow: {call: nap, args: [0], kwargs: {seconds: 2.5}, timeout: 0.3}
          churn: {call: nap, map: [%s], kwargs: {seconds: 0.01}}
        """ % ", ".join(map(str, range(150)))))
    lines: list[tuple[float, str]] = []
    t0 = time.monotonic()
    result = Runner(client, spec.program.parsed, tmp_path / "run",
                    log=lambda line: lines.append((time.monotonic() - t0, line))).run()
    assert result.code == ExitCode.TASKS_FAILED and result.counts["done"] == 150
    assert "TaskTimeout" in result.manifest["tasks"]["slow"]["error"]
    failed_at = next(t for t, line in lines if line.startswith("slow: failed"))
    finished_at = next(t for t, line in lines if line.startswith("finished"))
    assert failed_at < 1.2 < finished_at, lines[-3:]
