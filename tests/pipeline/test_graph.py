"""Expansion into concrete tasks, states and cache keys: pure logic, no workers."""

from __future__ import annotations

import pytest

from hpcdist.pipeline.graph import Plan
from hpcdist.pipeline.model import find_cycle
from hpcdist.pipeline.keys import function_identity, make_key_fn
from hpcdist.pipeline.model import Pipeline, Ref, TaskDef


def pipeline(*tasks: TaskDef, on_error: str = "continue") -> Pipeline:
    return Pipeline(tasks={t.name: t for t in tasks}, module="m", on_error=on_error)


def plan_of(p: Pipeline, nonce: str = "n1", fns: dict[str, str] | None = None) -> Plan:
    ids = {n: (fns or {}).get(n, f"m:{n}") for n in p.tasks}
    return Plan(p, make_key_fn(ids, nonce))


def ready_tids(plan: Plan) -> list[str]:
    return [it.tid for it in plan.ready()]


@pytest.mark.parametrize(("deps", "cycle"), [
    ({"a": ["b"], "b": ["c"], "c": ["a"]}, ["a", "b", "c"]),
    ({"a": [], "b": ["a"], "c": ["b", "d"], "d": ["c"]}, ["c", "d"]),
    ({"a": ["a"]}, ["a"]),
    ({"a": ["b"], "b": [], "c": ["a", "b", "x"]}, []),
])
def test_find_cycle(deps: dict, cycle: list) -> None:
    assert find_cycle(deps) == cycle


def test_map_over_a_plain_task_expands_once_its_length_is_known() -> None:
    p = pipeline(TaskDef("files", "list_files"), TaskDef("counts", "count", map="files"),
                 TaskDef("total", "merge", args=(Ref("counts"),)))
    plan = plan_of(p)
    assert plan.group("counts") is None and plan.group("total") is None
    assert ready_tids(plan) == ["files"]
    plan.mark("files", "running")
    plan.done("files", length=3)
    assert plan.group("counts") == ["counts[0]", "counts[1]", "counts[2]"]
    assert plan.items["total"].deps == ("counts[0]", "counts[1]", "counts[2]")
    assert ready_tids(plan) == ["counts[0]", "counts[1]", "counts[2]"]
    for i in range(3):
        plan.done(f"counts[{i}]")
    assert ready_tids(plan) == ["total"]
    plan.done("total")
    assert plan.finished() and plan.counts() == {"done": 5, "unexpanded": 0}


def test_map_over_a_mapped_task_is_item_by_item() -> None:
    p = pipeline(TaskDef("a", "f", map=(1, 2, 3)), TaskDef("b", "g", map="a"))
    plan = plan_of(p)
    assert plan.group("b") == ["b[0]", "b[1]", "b[2]"]
    assert plan.items["b[1]"].deps == ("a[1]",) and plan.items["b[1]"].source == "a[1]"
    assert ready_tids(plan) == ["a[0]", "a[1]", "a[2]"]
    plan.done("a[1]")
    assert ready_tids(plan) == ["b[1]"]


def test_a_failure_skips_only_what_depends_on_it() -> None:
    p = pipeline(TaskDef("a", "f", map=(1, 2)), TaskDef("b", "g", map="a"), TaskDef("c", "h", args=(Ref("b"),)),
                 TaskDef("d", "k"))
    plan = plan_of(p)
    plan.ready()
    plan.set_state("a[0]", "failed")
    assert plan.items["b[0]"].state == "skipped" and plan.items["c"].state == "skipped"
    assert plan.items["b[1]"].state == "waiting" and plan.items["d"].state == "ready"
    plan.done("a[1]")
    assert ready_tids(plan) == ["b[1]"]


def test_on_error_stop_hands_out_nothing_new() -> None:
    p = pipeline(TaskDef("a", "f", map=(1, 2)), TaskDef("b", "g"), on_error="stop")
    plan = plan_of(p)
    plan.ready()
    plan.set_state("a[0]", "failed")
    assert plan.stopped and plan.ready() == []
    plan.close()
    assert {it.tid: it.state for it in plan.items.values()} == {"a[0]": "failed", "a[1]": "not_run", "b": "not_run"}


def test_mapping_over_an_output_that_is_not_a_list_fails_the_map() -> None:
    p = pipeline(TaskDef("a", "f"), TaskDef("b", "g", map="a"), TaskDef("c", "h", args=(Ref("b"),)))
    plan = plan_of(p)
    plan.done("a", length=None)
    assert plan.group("b") == ["b[]"] and plan.items["b[]"].state == "failed"
    assert "is not a list" in plan.errors["b[]"]
    assert plan.items["c"].state == "skipped"


def test_an_empty_list_maps_to_no_tasks() -> None:
    p = pipeline(TaskDef("a", "f"), TaskDef("b", "g", map="a"), TaskDef("c", "h", args=(Ref("b"),)))
    plan = plan_of(p)
    plan.done("a", length=0)
    assert plan.group("b") == [] and plan.items["c"].deps == ()
    assert ready_tids(plan) == ["c"]


def test_keys_are_stable_and_change_downstream_of_a_change() -> None:
    def build(arg: int, fn_b: str = "m:b", nonce: str = "n1", cache: bool = True) -> dict[str, str]:
        p = pipeline(TaskDef("a", "f", args=(arg,), cache=cache), TaskDef("b", "g", map="a"),
                     TaskDef("c", "h", args=(Ref("b"),)), TaskDef("x", "k", map=(1, 2)))
        plan = plan_of(p, nonce, {"b": fn_b})
        plan.done("a", length=2)
        return {tid: it.key for tid, it in plan.items.items()}

    base = build(1)
    assert base == build(1)  # same inputs, same keys
    assert len(set(base.values())) == len(base)  # every concrete task has its own key
    changed = build(2)
    assert all(changed[t] != base[t] for t in ("a", "b[0]", "b[1]", "c"))
    assert changed["x[0]"] == base["x[0]"]
    new_fn = build(1, fn_b="m:b2")
    assert new_fn["a"] == base["a"] and new_fn["b[0]"] != base["b[0]"] and new_fn["c"] != base["c"]
    # cache: false -> a fresh key every run, and so for everything downstream
    assert build(1, nonce="n1", cache=False)["c"] != build(1, nonce="n2", cache=False)["c"]
    assert build(1, nonce="n1")["c"] == build(1, nonce="n2")["c"]


def test_function_identity_follows_the_source(tmp_path, monkeypatch) -> None:
    import importlib
    import sys

    monkeypatch.syspath_prepend(str(tmp_path))
    mod = tmp_path / "idmod.py"
    mod.write_text("def f(x):\n    return x\n")
    first = function_identity(importlib.import_module("idmod").f)
    mod.write_text("def f(x):\n    return x + 1\n")
    sys.modules.pop("idmod")
    second = function_identity(importlib.import_module("idmod").f)
    sys.modules.pop("idmod")
    assert first.startswith("idmod:f:") and first != second
    assert function_identity(sum).startswith("builtins:sum:")


def test_an_item_that_also_refers_to_its_whole_mapped_source_waits_for_all_of_it() -> None:
    # map: a pairs b[i] with a[i]; {ref: a} in args needs every item of a as well
    p = pipeline(TaskDef("a", "f", map=(1, 2)), TaskDef("b", "g", map="a", args=(Ref("a"),)))
    plan = plan_of(p)
    assert ready_tids(plan) == ["a[0]", "a[1]"]
    plan.done("a[0]")
    assert ready_tids(plan) == []  # b[0] still needs a[1]
    assert plan.items["b[0]"].deps == ("a[0]", "a[1]")
    plan.done("a[1]")
    assert ready_tids(plan) == ["b[0]", "b[1]"]
