"""The table of job-spec keys: the one source of truth for the validator and the JSON Schema.

Each :class:`Key` names its kind (how a YAML node is checked and converted), its default,
documentation and an example. :func:`check_value` applies a key to a node;
:func:`json_schema` derives the JSON Schema (draft 2020-12) from the same table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hpcdist.spec_yaml import MAPPING, SCALAR, SEQUENCE, Node

REQUIRED = object()  # marker: the key has no default

NAME_PATTERN = r"[A-Za-z0-9._-]+"
ACCOUNT_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._@+,-]*"
MODULE_PATTERN = r"[A-Za-z0-9._+/@:-]+"
ENV_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
# one batch option and an optional value: no quotes, no $, no ; & | < > ` ( ), no newline
DIRECTIVE_PATTERN = r"-{1,2}[A-Za-z][A-Za-z0-9_-]*(?:[= ][A-Za-z0-9_.,:=/@+%\[\]-]+)?"
MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(KiB|MiB|GiB|TiB|KB|MB|GB|TB)\s*$")
MEMORY_UNITS = {
    "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
}  # fmt: skip
WALLTIME_PATTERN = r"(\d+-)?\d+:[0-5]\d:[0-5]\d|\d+"
OUTPUT_FIELDS = ("name", "timestamp")


@dataclass(frozen=True)
class Key:
    """One key of the spec.

    Attributes:
        name: the key as written in YAML.
        kind: one of section, str, name, choice, int, bool, walltime, memory, path,
            strlist, strmap, mapping; in the pipeline section also tasks, list, number,
            names (a name or a list of names), map and hosts (checked by hpcdist.pipeline.model).
        doc: one-line description (used in the docs and the JSON Schema).
        default: the default value, or REQUIRED.
        example: an example value (docs and schema).
        children: the keys of a section (or of a mapping the pipeline model checks).
        choices: allowed values of a choice key.
        minimum: smallest allowed integer.
        pattern: regular expression a string (or every list item) must match in full.
    """

    name: str
    kind: str
    doc: str
    default: Any = None
    example: Any = None
    children: tuple[Key, ...] = ()
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    pattern: str | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def child(self, name: str) -> Key | None:
        for k in self.children:
            if k.name == name:
                return k
        return None


RESOURCES = Key("resources", "section", "What the job asks the batch system for.", {}, children=(
    Key("ranks", "int", "Total MPI ranks, rank 0 (scheduler and driver) included.", REQUIRED, 8, minimum=2),
    Key("nodes", "int", "Number of nodes (SLURM --nodes).", None, 1, minimum=1),
    Key("ranks_per_node", "int", "MPI ranks on each node; nodes * ranks_per_node must equal ranks.", None, 8,
        minimum=1),
    Key("cpus_per_rank", "int", "CPU cores per rank (SLURM --cpus-per-task; SGE slots per rank).", 1, 1,
        minimum=1),
    Key("memory", "memory", "Memory per node with an explicit unit: KiB, MiB, GiB, TiB, KB, MB, GB or TB.",
        None, "16GiB"),
    Key("walltime", "walltime", "Time limit: HH:MM:SS, D-HH:MM:SS or whole minutes. Required for slurm and sge.",
        None, "01:30:00"),
    Key("grace", "int", "Seconds before the walltime at which the job gets the warning signal (USR1).", 120, 300,
        minimum=1),
    Key("queue", "name", "SLURM partition or SGE queue.", None, "short", pattern=ACCOUNT_PATTERN),
    Key("account", "name", "Account (project) charged for the job.", None, "proj42", pattern=ACCOUNT_PATTERN),
    Key("gpus_per_node", "int", "GPUs on each node (SLURM --gpus-per-node; use directives on SGE).", 0, 0,
        minimum=0),
    Key("parallel_environment", "name", "SGE parallel environment that grants the ranks (-pe NAME N).", "mpi",
        "mpi", pattern=NAME_PATTERN),
    Key("memory_resource", "name", "SGE resource that receives the per-slot memory (-l NAME=...).", "mem_free",
        "h_vmem", pattern=r"[A-Za-z_][A-Za-z0-9_]*"),
    Key("directives", "strlist", "Extra batch options, one option per entry, appended after validation.", [],
        ["--constraint=haswell"], pattern=DIRECTIVE_PATTERN),
))

ENVIRONMENT = Key("environment", "section", "How the job script prepares the environment.", {}, children=(
    Key("modules", "strlist", "Environment modules loaded, in order, with `module load`.", [],
        ["gcc/12", "openmpi/4.1"], pattern=MODULE_PATTERN),
    Key("setup", "strlist", "Shell lines run verbatim before the launch (after the modules).", [],
        ["source .venv/bin/activate"], pattern=r"[^\n\r]*"),
    Key("vars", "strmap", "Environment variables exported to every rank (values are quoted).", {},
        {"OMP_NUM_THREADS": "1"}, pattern=ENV_NAME_PATTERN),
    Key("workdir", "path", "Directory the job runs in (relative to the spec file's folder).", ".", "."),
    Key("python", "str", "Interpreter: a command looked up on PATH inside the job, or a path.", "python3",
        ".venv/bin/python"),
    Key("inherit_env", "bool", "SGE only: pass the submitting shell's environment (qsub -V).", False, False),
))

# The pipeline section: hpcdist.pipeline.model validates it (references, cycles, imports) with
# the names, patterns, choices and minimums below; the JSON Schema is derived from the same keys.
TASK_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_-]*"
DOTTED_PATTERN = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
CALL_PATTERN = rf"(?:{DOTTED_PATTERN}:)?{DOTTED_PATTERN}"

TASK = Key("task", "section", "One task: a call of a Python function.", None, children=(
    Key("call", "str", "package.module:function, or a function name in the pipeline's module.", REQUIRED,
        "count_words", pattern=CALL_PATTERN),
    Key("args", "list", "Positional arguments; {ref: NAME} anywhere inside is replaced by task NAME's output.",
        [], [{"ref": "files"}, 2]),
    Key("kwargs", "mapping", "Keyword arguments, same rules as args.", {}, {"factor": 3}),
    Key("map", "map", "Fan out one task per item of task NAME's output, or of a literal list "
        "(the item is the first positional argument).", None, "files", pattern=TASK_NAME_PATTERN),
    Key("after", "names", "Tasks that must finish first; no data is passed.", [], ["corpus"],
        pattern=TASK_NAME_PATTERN),
    Key("retries", "int", "Reruns after a failure or a timeout.", 0, 2, minimum=0),
    Key("timeout", "number", "Seconds one attempt may take; a timed-out attempt counts as failed.", None, 120),
    Key("workers", "hosts", "Preferred worker ranks or host names (a hint).", [], [1, 2]),
    Key("resources", "mapping", "Free-form hints, kept in the spec; not enforced.", {}, {"memory": "2GiB"}),
    Key("cache", "bool", "false: always recompute (and so everything downstream).", True, True),
    Key("version", "label", "A string or integer; changing it invalidates the stored results of this task "
        "(and downstream).", None, "2"),
))

PIPELINE = Key("pipeline", "mapping", "A task graph of Python functions (docs/pipelines.md).", None,
               {"module": "tasks", "tasks": {"total": {"call": "merge", "args": [{"ref": "counts"}]}}}, children=(
    Key("module", "str", "Module in which a call without a colon is looked up.", None, "tasks",
        pattern=DOTTED_PATTERN),
    Key("on_error", "choice", "continue: a failed task skips only its dependents; stop: dispatch nothing new.",
        "continue", "continue", choices=("continue", "stop")),
    Key("tasks", "tasks", "Task name -> task (letters, digits, _ and -; not first a digit or -).", REQUIRED,
        {"total": {"call": "merge_counts", "args": [{"ref": "counts"}]}}, children=(TASK,),
        pattern=TASK_NAME_PATTERN),
    Key("save", "names", "Tasks whose outputs go to outputs/ and into output_hash "
        "(default: the tasks nothing depends on).", None, ["total"], pattern=TASK_NAME_PATTERN),
    Key("resubmit", "int", "Batch jobs stopped at the walltime (status 5) submit themselves again with "
        "--resume, at most this many times in all.", 0, 2, minimum=0),
))

PROGRAM = Key("program", "section", "What rank 0 runs: exactly one of script or pipeline.", REQUIRED, children=(
    Key("script", "str", "Driver script and its arguments (path relative to the spec file's folder).", None,
        "pi.py --samples 100000"),
    PIPELINE,
))

SPEC = Key("spec", "section", "An hpcdist job spec.", REQUIRED, children=(
    Key("name", "name", "Job name.", REQUIRED, "wordcount", pattern=NAME_PATTERN),
    Key("scheduler", "choice", "Batch system; --scheduler overrides it.", "local", "slurm",
        choices=("slurm", "sge", "local")),
    RESOURCES,
    ENVIRONMENT,
    Key("launcher", "choice", "How ranks start under SLURM: auto (= mpiexec), srun or mpiexec.", "auto", "auto",
        choices=("auto", "srun", "mpiexec")),
    Key("launcher_args", "strlist", "Extra arguments of the launcher (each one quoted).", [], ["--bind-to", "core"]),
    PROGRAM,
    Key("output", "str", "Run directory; {name} and {timestamp} are filled in.", "runs/{name}-{timestamp}",
        "runs/{name}-{timestamp}"),
    Key("template", "path", "A site job-script template used instead of the built-in one.", None,
        "site/slurm.sh"),
))


def all_paths(key: Key = SPEC, prefix: str = "") -> list[str]:
    """Every valid dotted key path (sections included)."""
    out = []
    for k in key.children:
        path = f"{prefix}{k.name}"
        out.append(path)
        if k.kind == "section":
            out.extend(all_paths(k, path + "."))
    return out


def describe(node: Node) -> str:
    """How an error message names what the user wrote: the value as written, or its kind."""
    if node.kind == MAPPING:
        return "a mapping"
    if node.kind == SEQUENCE:
        return "a list"
    if node.value is None:
        return "nothing (null)"
    if isinstance(node.value, str):
        return repr(node.value)
    return f"{node.raw}" if node.raw is not None else repr(node.value)


def parse_walltime(text: str) -> int | None:
    """Seconds in a walltime (HH:MM:SS, D-HH:MM:SS or minutes), or None if malformed."""
    text = text.strip()
    m = re.fullmatch(r"(?:(\d+)-)?(\d+):([0-5]\d):([0-5]\d)", text)
    if m:
        days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
        if m.group(1) and hours > 23:
            return None
        return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if re.fullmatch(r"\d+", text):
        return int(text) * 60
    return None


def parse_memory(text: str) -> int | None:
    """Bytes in a memory size with an explicit unit (``16GiB``), or None if malformed."""
    m = MEMORY_RE.match(text)
    if not m:
        return None
    return round(float(m.group(1)) * MEMORY_UNITS[m.group(2)])  # not int(): 8.2 * 10**6 is 8199999.99...


def check_value(key: Key, node: Node) -> tuple[Any, str | None]:
    """Check ``node`` against ``key`` (sections excluded) and convert it.

    Returns:
        ``(value, None)`` when valid, else ``(None, "expected ..., got ...")``.
    """
    got = describe(node)
    kind, value = key.kind, node.value
    if kind in ("mapping", "strmap"):
        if node.kind != MAPPING:
            return None, f"expected a mapping, got {got}"
        if kind == "mapping":
            return node.plain(), None
        out = {}
        for name, sub in value.items():
            if key.pattern and not re.fullmatch(key.pattern, name):
                return None, f"{name!r} is not a valid variable name (letters, digits, _; not first a digit)"
            if sub.kind != SCALAR or sub.value is None or isinstance(sub.value, bool) or not isinstance(
                sub.value, (str, int, float)
            ):
                return None, f"{name}: expected a string or number, got {describe(sub)}"
            out[name] = sub.raw if not isinstance(sub.value, str) else sub.value
        return out, None
    if kind == "strlist":
        if node.kind != SEQUENCE:
            return None, f"expected a list of strings, got {got}"
        items = []
        for i, sub in enumerate(value):
            if sub.kind != SCALAR or not isinstance(sub.value, (str, int, float)) or isinstance(sub.value, bool):
                return None, f"item {i}: expected a string, got {describe(sub)}"
            text = sub.value if isinstance(sub.value, str) else str(sub.raw)
            if key.pattern and not re.fullmatch(key.pattern, text):
                return None, f"item {i}: {text!r} is not allowed ({_pattern_hint(key)})"
            items.append(text)
        return items, None
    if node.kind != SCALAR:
        return None, f"expected {_expected(key)}, got {got}"
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return None, f"expected {_expected(key)}, got {got}"
        if key.minimum is not None and value < key.minimum:
            return None, f"expected {_expected(key)}, got {value}"
        return value, None
    if kind == "bool":
        if not isinstance(value, bool):
            return None, f"expected true or false, got {got}"
        return value, None
    if kind == "walltime":
        seconds = parse_walltime(str(node.raw)) if isinstance(value, (str, int)) else None
        if not seconds:
            return None, f"expected {_expected(key)}, got {got}"
        return seconds, None
    if kind == "memory":
        size = parse_memory(value) if isinstance(value, str) else None
        if not size:
            return None, f"expected {_expected(key)}, got {got}"
        return size, None
    if not isinstance(value, str) or value == "":
        return None, f"expected {_expected(key)}, got {got}"
    if kind == "choice" and value not in key.choices:
        return None, f"expected {_expected(key)}, got {got}"
    if key.pattern and not re.fullmatch(key.pattern, value):
        return None, f"expected {_expected(key)}, got {got}"
    return value, None


def _pattern_hint(key: Key) -> str:
    if key.pattern == DIRECTIVE_PATTERN:
        return "one option such as --constraint=haswell or -l mem=4G, without quotes or shell characters"
    if key.pattern == MODULE_PATTERN:
        return "a module name such as gcc/12"
    return "a single line"


def _expected(key: Key) -> str:
    kind = key.kind
    if kind == "int":
        return f"an integer >= {key.minimum}" if key.minimum is not None else "an integer"
    if kind == "walltime":
        return "a walltime HH:MM:SS, D-HH:MM:SS or whole minutes (quote it: \"01:30:00\")"
    if kind == "memory":
        return "a size with an explicit unit such as 16GiB or 500MB (KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
    if kind == "choice":
        return "one of " + ", ".join(key.choices)
    if kind == "name":
        allowed = {NAME_PATTERN: "letters, digits, '.', '_', '-'", ACCOUNT_PATTERN: "letters, digits, ._@+,-"}.get(
            key.pattern or "", "letters, digits and '_', not first a digit")
        return f"a name made of {allowed}"
    if kind == "path":
        return "a path"
    return "a non-empty string"


# ---- JSON Schema ---------------------------------------------------------------------


def _schema(key: Key) -> dict[str, Any]:
    kind = key.kind
    s: dict[str, Any]
    if kind == "section" or (kind == "mapping" and key.children):
        s = {
            "type": "object",
            "properties": {k.name: _schema(k) for k in key.children},
            "additionalProperties": False,
        }
        # a section with a required key is required too (resources: ranks)
        required = [k.name for k in key.children
                    if k.required or (k.kind == "section" and any(c.required for c in k.children))]
        if required:
            s["required"] = required
        if key.name == "program":
            s["oneOf"] = [{"required": ["script"]}, {"required": ["pipeline"]}]
    elif kind == "int":
        s = {"type": "integer"}
        if key.minimum is not None:
            s["minimum"] = key.minimum
    elif kind == "bool":
        s = {"type": "boolean"}
    elif kind == "choice":
        s = {"enum": list(key.choices)}
    elif kind == "walltime":
        s = {"anyOf": [{"type": "string", "pattern": f"^(?:{WALLTIME_PATTERN})$"}, {"type": "integer", "minimum": 1}]}
    elif kind == "memory":
        s = {"type": "string", "pattern": MEMORY_RE.pattern}
    elif kind == "strlist":
        item: dict[str, Any] = {"type": "string"}
        if key.pattern:
            item["pattern"] = f"^(?:{key.pattern})$"
        s = {"type": "array", "items": item}
    elif kind == "strmap":
        s = {
            "type": "object",
            "propertyNames": {"pattern": f"^(?:{key.pattern})$"},
            "additionalProperties": {"type": ["string", "number"]},
        }
    elif kind == "mapping":
        s = {"type": "object"}
    elif kind == "tasks":
        s = {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": f"^(?:{key.pattern})$"},
            "additionalProperties": _schema(key.children[0]),
        }
    elif kind == "list":
        s = {"type": "array"}
    elif kind == "number":
        s = {"type": "number", "exclusiveMinimum": 0}
    elif kind == "names":
        name = {"type": "string", "pattern": f"^(?:{key.pattern})$"}
        s = {"anyOf": [name, {"type": "array", "items": name}]}
    elif kind == "map":
        name = {"type": "string", "pattern": f"^(?:{key.pattern})$"}
        ref = {"type": "object", "properties": {"ref": name}, "required": ["ref"], "additionalProperties": False}
        s = {"anyOf": [name, {"type": "array", "minItems": 1}, ref]}
    elif kind == "label":
        s = {"anyOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]}
    elif kind == "hosts":
        one = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "minLength": 1}]}
        s = {"anyOf": [one, {"type": "array", "items": one}]}
    else:
        s = {"type": "string", "minLength": 1}
        if key.pattern:
            s["pattern"] = f"^(?:{key.pattern})$"
    s["description"] = key.doc
    if key.default is not REQUIRED and key.default is not None and kind != "section":
        s["default"] = key.default
    if key.example is not None and kind != "section":
        s["examples"] = [key.example]
    return s


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a job spec, derived from :data:`SPEC`."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "hpcdist job spec",
    }
    schema.update(_schema(SPEC))
    return schema
