"""The job spec: every validation rule, overrides, paths, the dataclasses and the schema."""

from __future__ import annotations

import dataclasses
import re
import textwrap
from pathlib import Path

import pytest

import hpcdist
from hpcdist.errors import SpecError
from hpcdist.spec.model import JobSpec, load_spec
from hpcdist.spec.keys import SPEC, all_paths, parse_memory, parse_walltime
from hpcdist.spec.schema import json_schema

GOOD = """\
name: wordcount
scheduler: slurm
resources:
  ranks: 8
  nodes: 2
  ranks_per_node: 4
  memory: 16GiB
  walltime: "01:30:00"
  queue: short
  account: proj42
  directives: ["--constraint=haswell", "-l mem=4G"]
environment:
  modules: [gcc/12, openmpi/4.1]
  setup: ["source .venv/bin/activate"]
  vars: {OMP_NUM_THREADS: "1", RETRIES: 3}
  workdir: .
launcher: auto
program:
  script: driver.py --samples 1e8
output: runs/{name}-{timestamp}
"""


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    (tmp_path / "driver.py").write_text("print('driver')\n")
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str, overrides: tuple[str, ...] = ()) -> list[str]:
    """The problem lines of the SpecError raised for ``text`` (fails if none is raised)."""
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides)
    lines = str(info.value).splitlines()
    assert lines[0].startswith(f"invalid job spec {path}")
    assert info.value.problems == lines[1:]  # type: ignore[attr-defined]
    return [line.replace(f"{path}:", "job.yaml:") for line in lines[1:]]


def test_valid_spec_becomes_frozen_dataclasses(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD))
    assert isinstance(spec, JobSpec)
    assert spec.name == "wordcount" and spec.scheduler == "slurm"
    r = spec.resources
    assert (r.ranks, r.nodes, r.ranks_per_node, r.cpus_per_rank) == (8, 2, 4, 1)
    assert r.memory == 16 * 2**30
    assert r.walltime == 5400
    assert r.directives == ("--constraint=haswell", "-l mem=4G")
    assert spec.environment.modules == ("gcc/12", "openmpi/4.1")
    assert dict(spec.environment.vars) == {"OMP_NUM_THREADS": "1", "RETRIES": "3"}
    assert spec.program.script == tmp_path / "driver.py"
    assert spec.program.args == ("--samples", "1e8")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.environment.vars["X"] = "1"  # type: ignore[index]


def test_public_api_exports_load_spec(tmp_path: Path) -> None:
    assert hpcdist.load_spec(write(tmp_path, GOOD)).name == "wordcount"


def test_defaults(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "name: a\nresources: {ranks: 2}\nprogram: {script: driver.py}\n"))
    assert spec.scheduler == "local"
    assert spec.launcher == "auto"
    assert spec.resources.cpus_per_rank == 1 and spec.resources.gpus_per_node == 0
    assert spec.resources.walltime is None and spec.resources.parallel_environment == "mpi"
    assert spec.environment.python == "python3"
    assert spec.environment.workdir == tmp_path
    assert spec.output == "runs/{name}-{timestamp}"
    assert spec.run_dir("T") == tmp_path / "runs" / "a-T"


def test_relative_paths_start_at_the_spec_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = tmp_path / "project"
    sub.mkdir()
    (sub / "work").mkdir()
    (sub / "site").mkdir()
    (sub / "site" / "slurm.sh").write_text("#!/bin/bash\n")
    path = write(sub, GOOD + "template: site/slurm.sh\n").parent / "job.yaml"
    text = path.read_text().replace("workdir: .", "workdir: work")
    path.write_text(text)
    monkeypatch.chdir(tmp_path)  # the current directory must not matter
    spec = load_spec("project/job.yaml")
    assert spec.path == sub / "job.yaml"
    assert spec.environment.workdir == sub / "work"
    assert spec.template == sub / "site" / "slurm.sh"
    assert spec.program.script == sub / "driver.py"
    assert spec.run_dir("T") == sub / "runs" / "wordcount-T"


def test_error_format_and_closest_key(tmp_path: Path) -> None:
    text = GOOD.replace("resources:", "resourses:", 1)
    lines = problems(tmp_path, text)
    assert "job.yaml:3:1: resourses: unknown key (did you mean 'resources'?)" in lines
    assert any(line.startswith("job.yaml:1:1: resources.ranks: required key missing") for line in lines)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """\
    name: "bad name!"
    scheduler: pbs
    resources:
      ranks: 1
      memory: 16G
      walltime: "1:75:00"
      cpus_per_rank: two
      queue: "short; rm -rf /"
      directives: ["--constraint=haswell", "--x=$(touch /tmp/x)", "-l a\\nb"]
    environment:
      modulez: [gcc]
      vars: {"1BAD": x, GOOD: [1]}
    launcher: ssh
    program:
      script: missing.py
    ranks: 3
    """
    lines = problems(tmp_path, text)
    expected = [
        "job.yaml:1:7: name: expected a name made of letters, digits, '.', '_', '-', got 'bad name!'",
        "job.yaml:2:12: scheduler: expected one of slurm, sge, local, got 'pbs'",
        "job.yaml:4:10: resources.ranks: expected an integer >= 2, got 1",
        "job.yaml:5:11: resources.memory: expected a size with an explicit unit",
        "job.yaml:6:13: resources.walltime: expected a walltime",
        "job.yaml:7:18: resources.cpus_per_rank: expected an integer >= 1, got 'two'",
        "job.yaml:8:10: resources.queue: expected a name",
        "job.yaml:9:15: resources.directives: item 1: '--x=$(touch /tmp/x)' is not allowed",
        "job.yaml:11:3: environment.modulez: unknown key (did you mean 'modules'?)",
        "job.yaml:12:9: environment.vars: '1BAD' is not a valid variable name",
        "job.yaml:13:11: launcher: expected one of auto, srun, mpiexec, openmpi, got 'ssh'",
        "job.yaml:15:11: program.script: file 'missing.py' not found",
        "job.yaml:16:1: ranks: unknown key (did you mean 'resources.ranks'?)",
    ]
    assert len(lines) == len(expected), "\n".join(lines)
    for line, want in zip(lines, expected):
        assert line.startswith(want), (line, want)


@pytest.mark.parametrize(
    "text, want",
    [
        ("", "job.yaml:1:1: the spec is empty"),
        ("- a\n- b\n", "job.yaml:1:1: the spec must be a mapping"),
        ("just a string\n", "job.yaml:1:1: the spec must be a mapping"),
        ("name: a\nname: b\n", "job.yaml:2:1: name: duplicate key (first defined at line 1)"),
        ("name: [a\n", "job.yaml:2:1: YAML syntax error"),
        ("name: a\n  bad indent: 1\n", "job.yaml:2:13: YAML syntax error"),
        ("name: a\nresources: 4\n", "job.yaml:2:12: resources: expected a mapping of keys, got '4'"),
    ],
)
def test_file_level_problems(tmp_path: Path, text: str, want: str) -> None:
    lines = problems(tmp_path, text)
    assert any(line.startswith(want) for line in lines), lines


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "nodes, rpn, ranks, want",
    [
        (2, 3, 8, "nodes * ranks_per_node = 2 * 3 = 6, but ranks is 8"),
        (None, 3, 8, "ranks (8) is not a multiple of ranks_per_node (3)"),
        (9, None, 8, "more nodes (9) than ranks (8)"),
    ],
)
def test_layout_must_add_up(tmp_path: Path, nodes: int | None, rpn: int | None, ranks: int, want: str) -> None:
    res = f"  ranks: {ranks}\n" + (f"  nodes: {nodes}\n" if nodes else "") + (f"  ranks_per_node: {rpn}\n" if rpn else "")
    lines = problems(tmp_path, f"name: a\nresources:\n{res}program: {{script: driver.py}}\n")
    assert len(lines) == 1 and want in lines[0]


def test_walltime_required_for_batch_systems_only(tmp_path: Path) -> None:
    text = "name: a\nscheduler: sge\nresources: {ranks: 2}\nprogram: {script: driver.py}\n"
    lines = problems(tmp_path, text)
    assert lines == ['job.yaml:3:12: resources.walltime: required for sge jobs (e.g. walltime: "01:00:00")']
    assert load_spec(write(tmp_path, text), ("scheduler=local",)).scheduler == "local"


def test_program_needs_exactly_one_of_script_or_pipeline(tmp_path: Path) -> None:
    both = "name: a\nresources: {ranks: 2}\nprogram: {script: driver.py, pipeline: {steps: []}}\n"
    assert "expected exactly one of script or pipeline, got both" in problems(tmp_path, both)[0]
    neither = "name: a\nresources: {ranks: 2}\nprogram: {}\n"
    assert "got neither" in problems(tmp_path, neither)[0]
    bad = "name: a\nresources: {ranks: 2}\nprogram: {pipeline: [1]}\n"
    assert "program.pipeline: expected a mapping" in problems(tmp_path, bad)[0]
    pipeline = "{tasks: {a: {call: 'os:getcwd'}}}"
    spec = load_spec(write(tmp_path, f"name: a\nresources: {{ranks: 2}}\nprogram: {{pipeline: {pipeline}}}\n"))
    assert spec.program.script is None and dict(spec.program.pipeline or {}) == {"tasks": {"a": {"call": "os:getcwd"}}}
    assert list(spec.program.parsed.tasks) == ["a"]  # checked in depth by tests/pipeline/test_model.py


def test_srun_under_sge_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("scheduler: slurm", "scheduler: sge").replace("launcher: auto", "launcher: srun")
    assert problems(tmp_path, text) == ["job.yaml:17:11: launcher: srun exists only under SLURM; use auto or mpiexec"]


def test_name_messages_describe_each_key_s_own_pattern(tmp_path: Path) -> None:
    lines = problems(tmp_path, GOOD, ("resources.memory_resource=h-vmem", "resources.account=-x"))
    assert sorted(lines) == [
        "--set resources.account=-x: resources.account: expected a name made of letters, digits, ._@+,-, got '-x'",
        "--set resources.memory_resource=h-vmem: resources.memory_resource: expected a name made of letters, "
        "digits and '_', not first a digit, got 'h-vmem'",
    ]


def test_output_placeholders_are_checked(tmp_path: Path) -> None:
    lines = problems(tmp_path, GOOD.replace("runs/{name}-{timestamp}", "runs/{user}"))
    assert lines == ["job.yaml:20:9: output: unknown placeholder {user}; available: {name}, {timestamp}"]


def test_grace_must_be_shorter_than_walltime_and_default_adapts(tmp_path: Path) -> None:
    lines = problems(tmp_path, GOOD.replace('walltime: "01:30:00"', "walltime: 2\n  grace: 120"))
    assert lines == ["job.yaml:9:10: resources.grace: must be shorter than the walltime (120 s), got 120"]
    spec = load_spec(write(tmp_path, GOOD.replace('walltime: "01:30:00"', "walltime: 2")))
    assert spec.resources.walltime == 120 and spec.resources.grace == 60


# -- overrides ----------------------------------------------------------------------------


def test_overrides_apply_in_order_and_parse_yaml_scalars(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    spec = load_spec(path, ("resources.ranks=16", "resources.nodes=4", "resources.walltime=45",
                            "environment.vars.NEW=x y", "output=out/{name}", "scheduler=sge"))
    assert spec.resources.ranks == 16 and spec.resources.nodes == 4
    assert spec.resources.walltime == 45 * 60
    assert spec.environment.vars["NEW"] == "x y"
    assert spec.run_dir() == tmp_path / "out" / "wordcount"
    assert spec.scheduler == "sge"


def test_override_creates_missing_sections(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\nprogram: {script: driver.py}\n")
    assert load_spec(path, ("resources.ranks=3",)).resources.ranks == 3


def test_override_problems_name_the_option(tmp_path: Path) -> None:
    lines = problems(tmp_path, GOOD, ("resources.rank=16", "resources.ranks=1", "nonsense", "program.script.x=1"))
    assert "--set resources.rank=16: resources.rank: unknown key (did you mean 'resources.ranks'?)" in lines
    assert "--set resources.ranks=1: resources.ranks: expected an integer >= 2, got 1" in lines
    assert "--set nonsense: expected KEY.PATH=VALUE, e.g. resources.ranks=16" in lines
    assert any(line.startswith("--set program.script.x=1: program.script.x: unknown key") for line in lines)


# -- value parsers and the schema ------------------------------------------------------------


@pytest.mark.parametrize(
    "text, seconds",
    [("01:30:00", 5400), ("1:30:00", 5400), ("2-00:00:00", 172800), ("90", 5400), ("100:00:00", 360000),
     ("1:60:00", None), ("2-25:00:00", None), ("1h", None), ("", None), ("1:30", None)],
)
def test_parse_walltime(text: str, seconds: int | None) -> None:
    assert parse_walltime(text) == seconds


@pytest.mark.parametrize(
    "text, size",
    [("16GiB", 16 * 2**30), ("500MB", 500 * 10**6), ("1.5GiB", 3 * 2**29), ("2 TB", 2 * 10**12),
     ("16G", None), ("16", None), ("16gib", None), ("GiB", None)],
)
def test_parse_memory(text: str, size: int | None) -> None:
    assert parse_memory(text) == size


def test_unquoted_sexagesimal_walltime_is_read_as_written(tmp_path: Path) -> None:
    # YAML 1.1 reads 1:30:00 as the integer 5400; the spec reads it as a time
    spec = load_spec(write(tmp_path, GOOD.replace('"01:30:00"', "1:30:00")))
    assert spec.resources.walltime == 5400


def test_schema_is_derived_from_the_key_table() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    def paths(node: dict, prefix: str = "") -> list[str]:
        out = []
        for name, sub in node.get("properties", {}).items():
            out.append(prefix + name)
            if sub.get("type") == "object" and "properties" in sub and prefix + name != "program.pipeline":
                out.extend(paths(sub, prefix + name + "."))
        return out

    assert sorted(paths(schema)) == sorted(all_paths())  # the pipeline section: next test
    assert schema["required"] == ["name", "resources", "program"]
    assert [k.name for k in SPEC.children if k.required] == ["name", "program"]
    assert schema["properties"]["resources"]["properties"]["ranks"]["minimum"] == 2
    assert schema["properties"]["resources"]["additionalProperties"] is False


def test_schema_describes_the_pipeline_section_from_the_key_table() -> None:
    from hpcdist.pipeline import model
    from hpcdist.spec.keys import PIPELINE

    pipeline = json_schema()["properties"]["program"]["properties"]["pipeline"]
    assert list(pipeline["properties"]) == ["module", "on_error", "tasks", "save", "resubmit"]
    assert list(pipeline["properties"]) == list(model._PIPELINE_KEYS)  # the validator's own list
    assert pipeline["required"] == ["tasks"] and pipeline["additionalProperties"] is False
    assert pipeline["properties"]["on_error"]["enum"] == list(model.ON_ERROR) == ["continue", "stop"]
    assert pipeline["properties"]["resubmit"] == {
        "type": "integer", "minimum": 0, "maximum": 10_000, "description": PIPELINE.child("resubmit").doc,
        "default": 0, "examples": [2]}
    task = pipeline["properties"]["tasks"]["additionalProperties"]
    assert list(task["properties"]) == list(model._TASK_KEYS) == [
        "call", "args", "kwargs", "map", "after", "retries", "timeout", "workers", "resources", "cache", "version"]
    assert task["required"] == ["call"] and task["additionalProperties"] is False
    assert task["properties"]["retries"]["minimum"] == 0 and task["properties"]["cache"]["default"] is True
    assert "program.pipeline" not in json_schema()["properties"]["program"].get("required", [])


def test_examples_and_documented_spec_satisfy_the_schema(tmp_path: Path) -> None:
    import jsonschema  # the test extra installs it
    import yaml

    validator = jsonschema.Draft202012Validator(json_schema())
    jsonschema.Draft202012Validator.check_schema(json_schema())
    repo = Path(__file__).resolve().parents[1]
    docs = [repo / "examples" / "pi" / n for n in ("job.yaml", "job-slurm.yaml", "job-sge.yaml")]
    pipelines = sorted(repo.glob("examples/*/job.yaml"))
    assert {p.parent.name for p in pipelines} >= {"wordcount", "montecarlo_pi", "array_tree"}
    for doc in [*docs, *pipelines, write(tmp_path, GOOD)]:
        assert list(validator.iter_errors(yaml.safe_load(doc.read_text()))) == [], doc


def test_schema_rejects_pipeline_mistakes() -> None:
    import jsonschema
    import yaml

    validator = jsonschema.Draft202012Validator(json_schema())
    repo = Path(__file__).resolve().parents[1]
    good = yaml.safe_load((repo / "examples" / "wordcount" / "job.yaml").read_text())
    pipeline = good["program"]["pipeline"]
    cases = {
        "resubmit": ({"resubmit": -1}, "-1 is less than the minimum of 0"),
        "unknown key": ({"retry": 1}, "'retry' was unexpected"),
        "on_error": ({"on_error": "halt"}, "'halt' is not one of"),
        "task key": ({"tasks": {**pipeline["tasks"], "x": {"call": "f", "retry": 2}}}, "'retry' was unexpected"),
        "no call": ({"tasks": {"x": {"args": [1]}}}, "'call' is a required property"),
        "task name": ({"tasks": {"1x": {"call": "f"}}}, "'1x' does not match"),
    }
    for what, (change, message) in cases.items():
        bad = {**good, "program": {"pipeline": {**pipeline, **change}}}
        messages = " / ".join(e.message for e in validator.iter_errors(bad))
        assert message in messages, (what, messages)
    bad = yaml.safe_load(GOOD.replace("ranks: 8", "ranks: 1").replace("resources:", "resources:\n  rank: 2"))
    messages = " ".join(e.message for e in validator.iter_errors(bad))
    assert re.search(r"1 is less than the minimum of 2", messages) and "'rank'" in messages


def test_docs_describe_every_key() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "spec.md").read_text()
    missing = [p for p in all_paths() if f"| `{p}` |" not in docs]
    assert missing == [], f"docs/spec.md has no table row for {missing}"
