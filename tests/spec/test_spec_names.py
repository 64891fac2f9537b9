"""The job name is used as the batch job name and in the run directory's name: characters the
file system or Grid Engine refuse, and names too long for a file name, are spec errors; the
batch-system rules are one set, applied by validate and by render alike (issue 10)."""

from __future__ import annotations

import pytest
from specutil import base_spec, spec_text

from hpcdist.batch import render
from hpcdist.errors import RenderError
from hpcdist.spec.model import JobSpec, load_spec
from hpcdist.spec.rules import NAME_MAX, RUN_DIR_TEMP_EXTRA

# characters SGE forbids in job names (\n \t \r / : @ \ * ?), the path separator, shell specials
BAD_NAMES = ["a/b", "a:b", "a@b", "a\\\\b", "a*b", "a?b", "a b", "a'b", 'a\\"b', "a$b", "a;b", "a|b", "a&b",
             "a(b)", "a[b]", "a{b}", "a,b", "a=b", "a%b", "a~b", "é", ".", "..", ""]


def render_at(spec: JobSpec, system: str | None = None, timestamp: str = "T") -> str:
    """The job script of ``spec`` writing into its run directory for ``timestamp``."""
    return render(spec, system, spec.run_dir(timestamp))


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("scheduler", ["slurm", "sge", "local"])
def test_names_with_characters_that_are_not_safe_are_refused(problems_of, name, scheduler) -> None:
    spec = base_spec()
    spec["scheduler"] = scheduler
    text, line, column = spec_text("name", f'"{name}"', spec)
    lines = problems_of(text)
    assert len(lines) == 1 and lines[0].startswith(f"job.yaml:{line}:{column}: name: "), lines


@pytest.mark.parametrize("name", ["a.b-c_d", "Job1", "x", "A" * 100, "a..b", "_x", "-x"])
@pytest.mark.parametrize("scheduler", ["slurm", "sge"])
def test_good_names_are_accepted(load, name, scheduler) -> None:
    spec = base_spec()
    spec["scheduler"] = scheduler
    text, _, _ = spec_text("name", f'"{name}"', spec)
    assert load(text).name == name


@pytest.mark.parametrize("name", ["123", "1abc", "0042", "9-x"])
def test_grid_engine_refuses_names_that_start_with_a_digit_slurm_does_not(problems_of, load, name) -> None:
    spec = base_spec()
    text, _, _ = spec_text("name", f'"{name}"', spec)
    assert load(text).name == name
    spec = base_spec()
    spec["scheduler"] = "sge"
    text, line, column = spec_text("name", f'"{name}"', spec)
    assert problems_of(text) == [f"job.yaml:{line}:{column}: name: Grid Engine refuses job names that start "
                                 f"with a digit, got {name!r}; start it with a letter"]


# the run directory is OUTPUT with {name} and the longest {timestamp} (20 characters), plus the
# bytes hpcdist submit adds while it builds it under a temporary name
LONGEST = NAME_MAX - RUN_DIR_TEMP_EXTRA - len("-") - len("20000101-000000-1000")


@pytest.mark.parametrize("output, longest", [
    ("runs/{name}-{timestamp}", LONGEST),
    ("runs/{name}", NAME_MAX - RUN_DIR_TEMP_EXTRA),
    ("{name}/{timestamp}", NAME_MAX),
])
def test_a_name_longer_than_a_file_name_can_hold_names_the_limit(problems_of, load, output, longest) -> None:
    spec = base_spec()
    spec["output"] = output
    text, _, _ = spec_text("name", "a" * longest, spec)
    assert len(load(text).name) == longest
    spec = base_spec()
    spec["output"] = output
    text, _, _ = spec_text("name", "a" * (longest + 1), spec)
    lines = problems_of(text)
    assert len(lines) == 1 and "more than the file name limit of 255 bytes" in lines[0], lines


def test_a_long_folder_in_output_is_refused(problems_of) -> None:
    spec = base_spec()
    spec["output"] = "x" * 256 + "/{name}"
    text, line, column = spec_text("name", "job", spec)
    lines = problems_of(text)
    assert len(lines) == 1 and lines[0].startswith("job.yaml:") and ": output: the folder 'xxxx" in lines[0]


def test_non_ascii_bytes_count_in_the_file_name_limit(problems_of) -> None:
    spec = base_spec()
    spec["output"] = "runs/" + "é" * 120 + "-{name}"  # 240 bytes, 120 characters
    text, _, _ = spec_text("name", "job", spec)
    lines = problems_of(text)
    assert len(lines) == 1 and "more than the file name limit" in lines[0], lines


# -- one place per rule: what validate accepts, render accepts; what render refuses, validate refuses

RULES = [
    ("resources.gpus_per_node=2", "sge", "resources.gpus_per_node: Grid Engine has no standard GPU request"),
    ("launcher=srun", "sge", "launcher: srun exists only under SLURM"),
    ("name=1abc", "sge", "name: Grid Engine refuses job names that start with a digit"),
    ("resources.walltime=null", "sge", "resources.walltime: required for sge jobs"),
    ("resources.walltime=null", "slurm", "resources.walltime: required for slurm jobs"),
]


@pytest.mark.parametrize("override, system, message", RULES)
def test_validate_refuses_what_render_refuses(project, problems_of, override, system, message) -> None:
    spec = base_spec()
    text, _, _ = spec_text("scheduler", "slurm", spec)
    path = project / "job.yaml"
    path.write_text(text)
    lines = problems_of(text, (override, f"scheduler={system}"))
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith(("--set ", "job.yaml:")), lines
    if system != "slurm" or "walltime" in override:
        # rendering a spec validated for another system applies the same rules
        other = load_spec(path, (override,) if "walltime" not in override else ("scheduler=local", override))
        with pytest.raises(RenderError, match=message.split(": ", 1)[1].split(" (")[0]):
            render_at(other, system)


@pytest.mark.parametrize("system", ["slurm", "sge"])
def test_every_spec_validate_accepts_renders(load, system) -> None:
    spec = base_spec()
    spec["scheduler"] = system
    spec["resources"].update(ranks=8, nodes=2, ranks_per_node=4, memory="16GiB", queue=123, account=12345,
                             cpus_per_rank=2, grace=60)
    text, _, _ = spec_text("environment.vars.X", "'a\\tb'", spec)
    script = render_at(load(text))
    assert ("--partition=123" in script) if system == "slurm" else ("-q 123" in script)


@pytest.mark.parametrize("output", ["runs/my run", "runs/a'b", "runs/$HOME", "runs/a;b", "runs/a\\\\b", "runs/é"])
def test_a_run_directory_a_batch_directive_cannot_hold_is_refused_by_validate(problems_of, load, output) -> None:
    spec = base_spec()
    spec["output"] = output
    text, _, _ = spec_text("name", "job", spec)
    lines = problems_of(text)
    assert len(lines) == 1 and ": output: the run directory " in lines[0] and "batch directive" in lines[0], lines
    spec = base_spec()
    spec["output"] = output
    spec["scheduler"] = "local"  # no batch directive: hpcdist run may use it
    text, _, _ = spec_text("name", "job", spec)
    assert load(text).output == output


@pytest.mark.parametrize("template, words", [
    ("#!/bin/bash\necho ${jobname}\n", "unknown placeholder ${jobname}; available: "),
    ("#!/bin/bash\n${directives}\n${ranks_total}\n", "unknown placeholder ${ranks_total}"),
    (b"#!/bin/bash\n\xff\n", "not valid UTF-8"),
])
def test_a_site_template_is_checked_by_validate(problems_of, project, template, words) -> None:
    path = project / "site" / "slurm.sh"
    path.write_bytes(template if isinstance(template, bytes) else template.encode())
    text, line, column = spec_text("template", "site/slurm.sh")
    lines = problems_of(text)
    assert len(lines) == 1 and lines[0].startswith(f"job.yaml:{line}:{column}: template: ") and words in lines[0]


@pytest.mark.parametrize("length, ok", [(128, True), (129, False), (300, False)])
def test_task_names_fit_in_the_run_directory_s_file_names(problems_of, load, project, length, ok) -> None:
    from hpcdist.pipeline.model import MAX_TASK_NAME

    (project / "tasks.py").write_text("def f():\n    return 1\n")
    spec = base_spec()
    spec["program"] = {"pipeline": {"module": "tasks", "tasks": {"t" * length: {"call": "f"}}}}
    text, _, _ = spec_text("name", "job", spec)
    if ok:
        assert list(load(text).program.parsed.tasks) == ["t" * length]
        return
    lines = problems_of(text)
    assert len(lines) == 1 and f"a task name is at most {MAX_TASK_NAME} characters" in lines[0], lines


@pytest.mark.timeout(5)
@pytest.mark.parametrize("output", ["runs/{name:>999999999}", "runs/{name!r}", "runs/{timestamp:x}", "runs/{0}",
                                    "runs/{}", "runs/{name.upper}", "runs/{name[0]}"])
def test_output_placeholders_take_no_format_spec(problems_of, output) -> None:
    spec = base_spec()
    spec["output"] = output
    text, line, column = spec_text("name", "job", spec)
    lines = problems_of(text)
    assert len(lines) == 1 and ": output: " in lines[0], lines
