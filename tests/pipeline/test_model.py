"""Pipeline validation through load_spec: one path, file:line messages, every problem at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcdist.errors import SpecError
from hpcdist.pipeline.model import Ref
from hpcdist.spec.model import load_spec


def problems(spec: Path, overrides: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(spec, overrides)
    return info.value.problems  # type: ignore[attr-defined]


def test_valid_pipeline_is_parsed(project) -> None:
    spec = load_spec(project())
    p = spec.program.parsed
    assert list(p.tasks) == ["numbers", "squares", "scaled", "sum", "lit"]
    assert p.tasks["sum"].args == (Ref("scaled"),)
    assert p.tasks["squares"].map == "numbers" and p.tasks["lit"].map == (1, 2, 3)
    assert p.tasks["scaled"].kwargs == {"factor": 3}
    assert p.save == ("sum", "lit", "numbers")
    assert p.tasks["sum"].deps == ["scaled"]
    assert p.on_error == "continue"


def test_save_defaults_to_tasks_nobody_consumes(project) -> None:
    spec = load_spec(project("""\
        tasks:
          a: {call: make, args: [2]}
          b: {call: square, map: a}
          c: {call: total, args: [{ref: b}]}
          d: {call: square, args: [2], after: [a]}
        """))
    assert spec.program.parsed.save == ("c", "d")


def test_unknown_references_and_keys_with_lines(project) -> None:
    out = problems(project("""\
        tasks:
          a: {call: make, args: [2]}
          b: {call: total, args: [{ref: aa}], after: [zz], retires: 2}
          c: {call: square, map: nothere}
        save: [a, q]
        """))
    text = "\n".join(out)
    assert "job.yaml:8:" in text and "program.pipeline.tasks.b.args[0].ref: unknown task 'aa' (did you mean 'a'?)" in text
    assert "program.pipeline.tasks.b.after: unknown task 'zz'" in text
    assert "program.pipeline.tasks.b.retires: unknown key (did you mean 'retries'?)" in text
    assert "program.pipeline.tasks.c.map: unknown task 'nothere'" in text
    assert "program.pipeline.save: unknown task 'q'" in text
    assert len(out) == 5


def test_cycle_is_named(project) -> None:
    out = problems(project("""\
        tasks:
          a: {call: total, args: [{ref: c}]}
          b: {call: total, args: [{ref: a}]}
          c: {call: total, args: [{ref: b}]}
          d: {call: make, args: [1]}
        """))
    assert len(out) == 1

    assert "program.pipeline.tasks.a: dependency cycle: a -> c -> b -> a" in out[0]
    assert ":7:7:" in out[0]


def test_callables_are_imported_on_the_submit_host(project) -> None:
    out = problems(project("""\
        tasks:
          a: {call: nothing_here}
          b: {call: NOT_CALLABLE}
          c: {call: "no_such_module_xyz:f"}
          d: {call: "os.path:join"}
        """))
    text = "\n".join(out)
    assert ":7:7: program.pipeline.tasks.a.call: module 'tasks' has no attribute 'nothing_here'" in text
    assert ":8:7: program.pipeline.tasks.b.call: tasks:NOT_CALLABLE is not callable (it is int)" in text
    assert ":9:7: program.pipeline.tasks.c.call: cannot import module 'no_such_module_xyz'" in text
    assert len(out) == 3


def test_map_must_be_a_list_or_a_task(project) -> None:
    out = problems(project("""\
        tasks:
          a: {call: square, map: {x: 1}}
          b: {call: square, map: 5}
          c: {call: square, map: [{ref: a}]}
          d: {call: square, map: []}
        """))
    text = "\n".join(out)
    assert "tasks.a.map: expected a task name or a literal list to map over, got a mapping" in text
    assert "tasks.b.map: expected a task name or a literal list to map over, got 5" in text
    assert "tasks.c.map: a literal map list cannot hold {ref: ...}" in text
    assert "tasks.d.map: maps over an empty list" in text


def test_types_of_task_keys(project) -> None:
    out = problems(project("""\
        on_error: later
        tasks:
          a: {call: square, args: 3, retries: -1, timeout: 0, cache: maybe, kwargs: [1]}
          "9x": {call: square}
        """))
    text = "\n".join(out)
    for piece in ("on_error: expected continue or stop, got 'later'", "tasks.a.args: expected a list, got 3",
                  "tasks.a.retries: expected an integer >= 0, got -1",
                  "tasks.a.timeout: expected a number of seconds > 0 (and < 1e9), got 0",
                  "tasks.a.cache: expected true or false, got 'maybe'", "tasks.a.kwargs: expected a mapping",
                  "tasks.9x: task names are letters"):
        assert piece in text, piece


def test_set_overrides_reach_pipeline_keys(project) -> None:
    spec = load_spec(project(), ["program.pipeline.tasks.numbers.args=[3]", "program.pipeline.on_error=stop"])
    assert spec.program.parsed.tasks["numbers"].args == (3,)
    assert spec.program.parsed.on_error == "stop"
    out = problems(project(), ("program.pipeline.tasks.sum.args=[{ref: nope}]",))
    assert out[0].startswith("--set program.pipeline.tasks.sum.args=[{ref: nope}]: ")
