"""YAML 1.1 number traps: integers and durations are read from the text as written; strings
stay the text the user wrote (issue 10, Validation)."""

from __future__ import annotations

import pytest
from specutil import base_spec, spec_text

INT_KEYS = ["resources.ranks", "resources.nodes", "resources.cpus_per_rank", "resources.grace",
            "resources.gpus_per_node"]

# (as written, words the message must hold)
INT_TRAPS = [
    ("010", ["octal 8", "write 10 without the leading zero"]),
    ("0010", ["octal 8", "write 10"]),
    ("09", ["write 9 without the leading zero"]),
    ("0x10", ["decimal digits (16)"]),
    ("0o10", ["decimal digits (8)"]),
    ("0b11", ["decimal digits (3)"]),
    ("1_000", ["write 1000 without underscores"]),
    ("1:00", ["base 60", "decimal digits"]),
    ("1:30:00", ["base 60"]),
    ("8.0", ["write 8"]),
    ("1e3", ["write 1000"]),
    ("1.5", ["got 1.5"]),
    ('"8"', ["quoted", "without quotes"]),
    ("'8'", ["quoted", "without quotes"]),
    ("yes", ["got yes"]),
    ("on", ["got on"]),
    ("true", ["got true"]),
    (".inf", ["got .inf"]),
    ("[4]", ["got a list"]),
    ("eight", ["got 'eight'"]),
]


@pytest.mark.parametrize("key", INT_KEYS)
@pytest.mark.parametrize("raw, words", INT_TRAPS, ids=[t[0] for t in INT_TRAPS])
def test_integer_traps_are_refused_saying_how_to_write_them(problems_of, key, raw, words) -> None:
    text, line, column = spec_text(key, raw)
    lines = problems_of(text)
    mine = [p for p in lines if p.startswith(f"job.yaml:{line}:{column}: {key}: expected an integer")]
    assert len(mine) == 1, lines
    for word in words:
        assert word in mine[0], (word, mine[0])


@pytest.mark.parametrize("raw, value", [("8", 8), ("+8", 8), ("16", 16)])
def test_plain_decimal_integers_are_read(load, raw, value) -> None:
    text, _, _ = spec_text("resources.ranks", raw)
    assert load(text).resources.ranks == value


@pytest.mark.parametrize("override, words", [
    ("resources.ranks=010", ["octal 8", "write 10"]),
    ("resources.ranks=1:00", ["base 60"]),
    ("resources.nodes=0x2", ["decimal digits (2)"]),
])
def test_integer_traps_in_set_overrides(problems_of, override, words) -> None:
    text, _, _ = spec_text("name", "job")
    lines = problems_of(text, (override,))
    assert len(lines) == 1 and lines[0].startswith(f"--set {override}: "), lines
    assert all(w in lines[0] for w in words), lines


WALLTIMES_OK = [
    ("1:30:00", 5400), ('"1:30:00"', 5400), ("01:30:00", 5400), ("90", 5400), ('"90"', 5400),
    ("2-00:00:00", 172800), ("100:00:00", 360000), ("0:00:01", 1), ("090", 5400),
]


@pytest.mark.parametrize("raw, seconds", WALLTIMES_OK)
def test_walltimes_are_read_as_written(load, raw, seconds) -> None:
    text, _, _ = spec_text("resources.walltime", raw)
    assert load(text).resources.walltime == seconds


WALLTIME_TRAPS = [
    ("1:30", "MM:SS or H:MM"),
    ('"45:00"', "MM:SS or H:MM"),
    ("0x10", "whole minutes in decimal digits"),
    ("1_000", "whole minutes in decimal digits"),
    ("1.5", "got '1.5'"),
    ("on", "got 'on'"),
    ("0", "got '0'"),
    ("0:00:00", "got '0:00:00'"),
    ("1:60:00", "got '1:60:00'"),
    ("1h", "got '1h'"),
    ("1-25:00:00", "got '1-25:00:00'"),
    ("\"\\u0661:00:00\"", "expected a walltime"),  # Arabic-Indic digit one: not a digit here
]


@pytest.mark.parametrize("raw, words", WALLTIME_TRAPS, ids=[t[0] for t in WALLTIME_TRAPS])
def test_walltime_traps_are_refused(problems_of, raw, words) -> None:
    text, line, column = spec_text("resources.walltime", raw)
    lines = problems_of(text)
    assert len(lines) == 1 and lines[0].startswith(f"job.yaml:{line}:{column}: resources.walltime: "), lines
    assert words in lines[0], lines


MEMORY = [
    ("16GiB", 16 * 2**30), ("8.2MB", 8_200_000), ("1.5GiB", 3 * 2**29), ('"2 TB"', 2 * 10**12),
    ("0.001KB", 1),
]


@pytest.mark.parametrize("raw, size", MEMORY)
def test_memory_sizes_are_exact(load, raw, size) -> None:
    text, _, _ = spec_text("resources.memory", raw)
    assert load(text).resources.memory == size


@pytest.mark.parametrize("raw, words", [
    ("1e3", "needs an explicit unit"), ("1000", "needs an explicit unit"), ("16G", "expected a size"),
    ("1e3GiB", "expected a size"), ("on", "expected a size"), ("\"\\u0661GiB\"", "expected a size"),
    ("-1GiB", "expected a size"), ("0GiB", "expected a size"),
])
def test_memory_traps_are_refused(problems_of, raw, words) -> None:
    text, line, column = spec_text("resources.memory", raw)
    lines = problems_of(text)
    assert len(lines) == 1 and lines[0].startswith(f"job.yaml:{line}:{column}: resources.memory: "), lines
    assert words in lines[0], lines


# strings are the text as written: numeric names are common on real sites
STRINGS = [
    ("resources.queue", "123", "123"),
    ("resources.queue", "0042", "0042"),
    ("resources.queue", "0x1F", "0x1F"),
    ("resources.queue", "1.50", "1.50"),
    ("resources.queue", "1_000", "1_000"),
    ("resources.queue", "on", "on"),
    ("resources.queue", "no", "no"),
    ("resources.queue", "2024-01-01", "2024-01-01"),
    ("resources.account", "12345", "12345"),
    ("resources.account", "007", "007"),
    ("resources.parallel_environment", "1", "1"),
    ("name", "0042", "0042"),
    ("name", "1e3", "1e3"),
    ("environment.python", "3", "3"),
]


@pytest.mark.parametrize("key, raw, value", STRINGS)
def test_names_are_read_as_written(load, key, raw, value) -> None:
    text, _, _ = spec_text(key, raw)
    spec = load(text)
    section, _, leaf = key.rpartition(".")
    holder = getattr(spec, section) if section else spec
    assert getattr(holder, "queue" if leaf == "queue" else leaf) == value


@pytest.mark.parametrize("raw, value", [("010", "010"), ("yes", "yes"), ("1:30", "1:30"), ("0x10", "0x10"),
                                        ("1e3", "1e3"), ("2024-01-01", "2024-01-01"), ("off", "off")])
def test_environment_values_are_the_text_as_written(load, raw, value) -> None:
    text, _, _ = spec_text("environment.vars.X", raw)
    assert load(text).environment.vars["X"] == value


@pytest.mark.parametrize("key, raw, value", [
    ("environment.modules[0]", "1.10", ("1.10",)),
    ("launcher_args[0]", "010", ("010",)),
    ("environment.setup[0]", "on", ("on",)),
])
def test_list_items_are_the_text_as_written(load, key, raw, value) -> None:
    text, _, _ = spec_text(key, raw)
    spec = load(text)
    got = {"environment.modules[0]": spec.environment.modules, "launcher_args[0]": spec.launcher_args,
           "environment.setup[0]": spec.environment.setup}[key]
    assert got == value


@pytest.mark.parametrize("raw", ["null", "~", "[a]", "{a: 1}"])
def test_a_name_that_is_not_a_scalar_text_is_refused(problems_of, raw) -> None:
    text, line, column = spec_text("name", raw)
    lines = problems_of(text)
    assert any(p.startswith(f"job.yaml:{line}:{column}: name: expected a name") for p in lines), lines


PIPELINE_NUMBERS = [
    ("retries: 010", "retries: expected an integer >= 0, got 010", None),
    ("retries: 1:00", "base 60", None),
    ("retries: 0x2", "decimal digits (2)", None),
    ("retries: 2", None, ("retries", 2)),
    ("timeout: 1:30", "base 60", None),
    ("timeout: 0x10", "expected a number of seconds", None),
    ("timeout: .inf", "expected a number of seconds", None),
    ("timeout: '30'", "expected a number of seconds", None),
    ("timeout: 1e3", None, ("timeout", 1000.0)),
    ("timeout: 2.5", None, ("timeout", 2.5)),
    ("workers: [010]", "write 10 without the leading zero", None),
    ("workers: [1, node7]", None, ("workers", (1, "node7"))),
]


@pytest.mark.parametrize("setting, error, ok", PIPELINE_NUMBERS)
def test_pipeline_numbers_are_read_as_written(problems_of, load, project, setting, error, ok) -> None:
    (project / "tasks.py").write_text("def f():\n    return 1\n")
    spec = base_spec()
    spec["program"] = {"pipeline": {"module": "tasks", "tasks": {"t": {"call": "f", "cache": True}}}}
    text, _, _ = spec_text("name", "job", spec)
    text = text.replace("cache: true", setting)
    if error:
        lines = problems_of(text)
        assert len(lines) == 1 and error in lines[0], lines
    else:
        task = load(text).program.parsed.tasks["t"]
        assert getattr(task, ok[0]) == ok[1]


@pytest.mark.parametrize("raw, meant", [
    ("010", 8), ("0o10", "0o10"), ("1_000", 1000), ("1:30", 90), ("1:30.5", 90.5), ("yes", True), ("off", False),
    ("N", "N"),
])
def test_task_arguments_yaml_1_1_and_1_2_read_differently_are_refused(problems_of, project, raw, meant) -> None:
    (project / "tasks.py").write_text("def f(*args, **kwargs):\n    return 1\n")
    spec = base_spec()
    spec["program"] = {"pipeline": {"module": "tasks", "tasks": {"t": {"call": "f", "args": ["XARGX"]}}}}
    text, _, _ = spec_text("name", "job", spec)
    for where in (text.replace("XARGX", raw), text.replace("- XARGX", f"- {{k: {raw}}}")):
        lines = problems_of(where)
        assert len(lines) == 1 and f"{raw} means different things in YAML 1.1 (here: {meant!r})" in lines[0], lines
        assert "program.pipeline.tasks.t.args[0]" in lines[0]


@pytest.mark.parametrize("raw, value", [('"010"', "010"), ("10", 10), ("0x10", 16), ("true", True), ("'yes'", "yes"),
                                        ("1.5", 1.5), ("'1:30'", "1:30")])
def test_task_arguments_that_are_clear_are_kept(load, project, raw, value) -> None:
    (project / "tasks.py").write_text("def f(*args, **kwargs):\n    return 1\n")
    spec = base_spec()
    spec["program"] = {"pipeline": {"module": "tasks", "tasks": {"t": {"call": "f", "args": ["XARGX"]}}}}
    text, _, _ = spec_text("name", "job", spec)
    assert load(text.replace("XARGX", raw)).program.parsed.tasks["t"].args == (value,)
