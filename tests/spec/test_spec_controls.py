"""Control characters are refused, with file:line:column, in every string that can reach a job
script, the run directory's name or a batch option (issue 10, Security / Validation)."""

from __future__ import annotations

import pytest

from specutil import base_spec, spec_text

# C0 controls, DEL, C1 controls (NEL among them), the Unicode line and paragraph separators
CONTROLS = [0x00, 0x01, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1B, 0x1F, 0x7F, 0x80, 0x85, 0x9B, 0x9F,
            0x2028, 0x2029]

# (key as written, key path in the message, a valid text around the character, TAB allowed)
STRING_KEYS = [
    ("name", "name", "job", False),
    ("scheduler", "scheduler", "slurm", False),
    ("launcher", "launcher", "auto", False),
    ("resources.queue", "resources.queue", "short", False),
    ("resources.account", "resources.account", "proj42", False),
    ("resources.parallel_environment", "resources.parallel_environment", "mpi", False),
    ("resources.memory_resource", "resources.memory_resource", "h_vmem", False),
    ("resources.directives[0]", "resources.directives", "--constraint=x", False),
    ("environment.python", "environment.python", "python3", False),
    ("environment.workdir", "environment.workdir", "work", False),
    ("environment.modules[0]", "environment.modules", "gcc/12", False),
    ("environment.setup[0]", "environment.setup", "ulimit -s unlimited", True),
    ("environment.vars.MYVAR", "environment.vars", "value", True),
    ("launcher_args[0]", "launcher_args", "--bind-to", True),
    ("program.script", "program.script", "driver.py", True),
    ("output", "output", "runs/{name}", False),
    ("template", "template", "site/slurm.sh", False),
]


def escaped(text: str, code: int) -> str:
    """``text`` with character ``code`` in its middle, as a double-quoted YAML scalar with an escape."""
    esc = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    half = len(text) // 2
    return f'"{text[:half]}{esc}{text[half:]}"'


CASES = [
    pytest.param(key, path, text, code, id=f"{key}-U+{code:04X}")
    for key, path, text, tab in STRING_KEYS for code in CONTROLS if not (code == 0x09 and tab)
]


@pytest.mark.parametrize("key, path, text, code", CASES)
def test_control_characters_are_refused_with_file_line_column(problems_of, key, path, text, code) -> None:
    yaml_text, line, column = spec_text(key, escaped(text, code))
    lines = problems_of(yaml_text)
    hits = [p for p in lines if f"control character U+{code:04X}" in p]
    assert hits, lines
    if "[0]" in key or key.startswith("environment.vars"):
        assert hits[0].startswith(f"job.yaml:{line}:") and f": {path}: " in hits[0], hits
    else:
        assert hits[0].startswith(f"job.yaml:{line}:{column}: {path}: "), hits


@pytest.mark.parametrize("key, text", [(k, t) for k, _, t, tab in STRING_KEYS if tab])
def test_a_tab_is_kept_where_a_shell_line_or_quoted_word_allows_it(load, key, text) -> None:
    yaml_text, _, _ = spec_text(key, f'"{text}\\tx"')
    spec = load(yaml_text)
    if key == "program.script":  # split like a command line: the TAB separates words
        assert spec.program.args == ("x",)
        return
    got = {
        "environment.setup[0]": lambda: spec.environment.setup[0],
        "environment.vars.MYVAR": lambda: spec.environment.vars["MYVAR"],
        "launcher_args[0]": lambda: spec.launcher_args[0],
    }[key]()
    assert got == f"{text}\tx"


@pytest.mark.parametrize("override, path", [
    ('environment.vars.X="a\\nb"', "environment.vars"),
    ('name="a\\u2028b"', "name"),
    ('resources.queue="q\\rx"', "resources.queue"),
    ('environment.setup=["echo hi\\x1b[2J"]', "environment.setup"),
    ('launcher_args=["-x\\0"]', "launcher_args"),
])
def test_control_characters_from_set_overrides_are_refused(problems_of, override, path) -> None:
    text, _, _ = spec_text("name", "job")
    lines = problems_of(text, (override,))
    assert len(lines) == 1 and f": {path}: " in lines[0] and "control character" in lines[0], lines
    assert lines[0].startswith("--set ")


@pytest.mark.parametrize("key", ["A-B", "1A", "A B", "A\\nB", "\\u00e9", "PATH=x", "A;B", "$A", ""])
def test_environment_keys_must_be_shell_identifiers(problems_of, key) -> None:
    spec = base_spec()
    text, _, _ = spec_text("environment.vars", f'{{"{key}": x}}', spec)
    lines = problems_of(text)
    assert len(lines) == 1 and "environment.vars: " in lines[0] and "is not a valid variable name" in lines[0]


@pytest.mark.parametrize("key", ["_A1", "OMP_NUM_THREADS", "x"])
def test_valid_environment_keys_are_accepted(load, key) -> None:
    text, _, _ = spec_text(f"environment.vars.{key}", "'1'")
    assert dict(load(text).environment.vars) == {key: "1"}


PIPELINE_STRINGS = [
    ("module", '"ta\\nsks"', "program.pipeline.module"),
    ("on_error", '"stop\\r"', "program.pipeline.on_error"),
    ("call", '"tasks:f\\x1b"', "program.pipeline.tasks.t.call"),
    ("task name", None, "program.pipeline.tasks.t\\x0ax"),  # shown escaped: one line
]


@pytest.mark.parametrize("where, raw, path", PIPELINE_STRINGS)
def test_pipeline_names_refuse_control_characters(problems_of, project, where, raw, path) -> None:
    (project / "tasks.py").write_text("def f():\n    return 1\n")
    pipeline = {"module": "tasks", "on_error": "continue", "tasks": {"t": {"call": "f"}}}
    if where in ("module", "on_error"):
        pipeline[where] = "XRAWX"
    elif where == "call":
        pipeline["tasks"]["t"]["call"] = "XRAWX"
    spec = base_spec()
    spec["program"] = {"pipeline": pipeline}
    text, _, _ = spec_text("name", "job", spec)
    if raw is None:
        text = text.replace("    t:\n", '    "t\\nx":\n')
    else:
        text = text.replace("XRAWX", raw)
    lines = problems_of(text)
    assert any(f": {path}" in line for line in lines), lines
