"""Absurd values are refused before submission, naming the limit; arithmetic overflow is a
spec error, never a traceback (issue 10, Validation)."""

from __future__ import annotations

import pytest
from specutil import base_spec, spec_text

from hpcdist.spec.keys import MAX_COUNT, MAX_GRACE, MAX_MEMORY, MAX_PER_NODE, MAX_WALLTIME

LIMITS = [
    # (key, the largest accepted, the first refused, written as)
    ("resources.ranks", MAX_COUNT, MAX_COUNT + 1),
    ("resources.nodes", MAX_COUNT, MAX_COUNT + 1),
    ("resources.gpus_per_node", MAX_COUNT, MAX_COUNT + 1),
    ("resources.cpus_per_rank", MAX_PER_NODE, MAX_PER_NODE + 1),
    ("resources.ranks_per_node", MAX_PER_NODE, MAX_PER_NODE + 1),
    ("resources.grace", MAX_GRACE, MAX_GRACE + 1),
]


@pytest.mark.parametrize("key, ok, bad", LIMITS, ids=[t[0] for t in LIMITS])
@pytest.mark.parametrize("scale", [1, 2**32, 10**30])
def test_integers_beyond_the_batch_systems_limits_are_refused(problems_of, key, ok, bad, scale) -> None:
    value = bad if scale == 1 else ok * scale
    text, line, column = spec_text(key, str(value))
    lines = problems_of(text)
    mine = [p for p in lines if p.startswith(f"job.yaml:{line}:{column}: {key}: ")]
    assert len(mine) == 1 and f"more than the limit {ok}" in mine[0], lines


@pytest.mark.parametrize("key, ok, bad", LIMITS, ids=[t[0] for t in LIMITS])
def test_the_limit_itself_passes_its_own_check(problems_of, key, ok, bad) -> None:
    text, _, _ = spec_text(key, str(ok))
    try:
        lines = problems_of(text)
    except pytest.fail.Exception:
        return  # valid as a whole
    assert not [p for p in lines if f" {key}: " in p and "limit" in p], lines


@pytest.mark.parametrize("raw", [f"{MAX_WALLTIME // 60 + 1}", f"{MAX_WALLTIME // 3600 + 1}:00:00",
                                 "9" * 40 + ":00:00", "9" * 30 + "-00:00:00", "9" * 400])
def test_walltime_beyond_slurm_s_32_bit_minutes_is_refused(problems_of, raw) -> None:
    text, line, column = spec_text("resources.walltime", f'"{raw}"')
    lines = problems_of(text)
    assert len(lines) == 1 and lines[0].startswith(f"job.yaml:{line}:{column}: resources.walltime: "), lines
    assert f"limit of {MAX_WALLTIME // 60} minutes" in lines[0]


def test_the_longest_walltime_is_accepted(load) -> None:
    text, _, _ = spec_text("resources.walltime", str(MAX_WALLTIME // 60))
    assert load(text).resources.walltime == MAX_WALLTIME


@pytest.mark.parametrize("raw", ["9223372036854775808MiB", "8796093022208TiB", "9" * 30 + "TB", "9" * 400 + "KiB",
                                 "9" * 400 + "." + "9" * 400 + "TiB"])
def test_memory_beyond_slurm_s_limit_is_refused_without_overflow(problems_of, raw) -> None:
    text, line, column = spec_text("resources.memory", raw)
    lines = problems_of(text)
    assert len(lines) == 1 and lines[0].startswith(f"job.yaml:{line}:{column}: resources.memory: "), lines
    assert f"limit {MAX_MEMORY // 2**20} MiB" in lines[0]


@pytest.mark.parametrize("ranks, cpus", [(2**16, 2**15), (MAX_COUNT, 2), (2**20, MAX_PER_NODE)])
def test_total_cpus_beyond_32_bits_is_refused(problems_of, ranks, cpus) -> None:
    spec = base_spec()
    spec["resources"].update(ranks=ranks, cpus_per_rank=cpus)
    text, _, _ = spec_text("name", "job", spec)
    lines = problems_of(text)
    assert len(lines) == 1 and f"ranks * cpus_per_rank = {ranks} * {cpus} = {ranks * cpus}" in lines[0], lines
    assert f"more than the limit {MAX_COUNT}" in lines[0]


@pytest.mark.parametrize("nodes, rpn, ranks", [(MAX_COUNT, MAX_PER_NODE, 4), (10**6, 10**4, 4)])
def test_layout_products_are_errors_not_overflows(problems_of, nodes, rpn, ranks) -> None:
    spec = base_spec()
    spec["resources"].update(ranks=ranks, nodes=nodes, ranks_per_node=rpn)
    text, _, _ = spec_text("name", "job", spec)
    lines = problems_of(text)
    assert lines and all("resources" in p for p in lines), lines


@pytest.mark.parametrize("setting, limit", [("retries: 10001", "limit 10000"), ("retries: " + "9" * 50, "limit 10000"),
                                            ("timeout: 1e400", "seconds > 0"), ("timeout: 1e9", "seconds > 0")])
def test_pipeline_numbers_have_limits(problems_of, project, setting, limit) -> None:
    (project / "tasks.py").write_text("def f():\n    return 1\n")
    spec = base_spec()
    spec["program"] = {"pipeline": {"module": "tasks", "tasks": {"t": {"call": "f", "cache": True}}}}
    text, _, _ = spec_text("name", "job", spec)
    lines = problems_of(text.replace("cache: true", setting))
    assert len(lines) == 1 and limit in lines[0], lines


def test_resubmit_has_a_limit(problems_of, project) -> None:
    (project / "tasks.py").write_text("def f():\n    return 1\n")
    spec = base_spec()
    spec["program"] = {"pipeline": {"module": "tasks", "resubmit": 10**9, "tasks": {"t": {"call": "f"}}}}
    text, _, _ = spec_text("name", "job", spec)
    lines = problems_of(text)
    assert len(lines) == 1 and "program.pipeline.resubmit: 1000000000 is more than the limit 10000" in lines[0]
