"""The table of job-spec keys: the one source of truth for the validator, the JSON Schema and the dump.

Each :class:`Key` names its kind (how a YAML node is checked and converted), its default,
documentation and an example. :func:`check_value` applies a key to a node;
:func:`hpcdist.spec.schema.json_schema` derives the JSON Schema (draft 2020-12) from the same
table, and :func:`hpcdist.spec.dump.spec_to_yaml` writes a spec back with it.
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from hpcdist.spec.source import MAPPING, SCALAR, SEQUENCE, Node

REQUIRED = object()  # marker: the key has no default

NAME_PATTERN = r"[A-Za-z0-9._-]+"
ACCOUNT_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._@+,-]*"
MODULE_PATTERN = r"[A-Za-z0-9._+/@:-]+"
ENV_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
# one batch option and an optional value: no quotes, no $, no ; & | < > ` ( ), no newline
DIRECTIVE_PATTERN = r"-{1,2}[A-Za-z][A-Za-z0-9_-]*(?:[= ][A-Za-z0-9_.,:=/@+%\[\]-]+)?"
MEMORY_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(KiB|MiB|GiB|TiB|KB|MB|GB|TB)\s*$")
MEMORY_UNITS = {
    "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
}  # fmt: skip
# a path in a batch directive (--output=, -o): never run by a shell, but parsed by sbatch/qsub,
# which have no portable quoting
DIRECTIVE_PATH_PATTERN = r"[A-Za-z0-9_./+@%:,=-]+"
WALLTIME_PATTERN = r"([0-9]+-)?[0-9]+:[0-5][0-9]:[0-5][0-9]|[0-9]+"
OUTPUT_FIELDS = ("name", "timestamp")
#: the values of ``launcher``
LAUNCHERS = ("auto", "srun", "mpiexec", "openmpi")
#: the values of ``scheduler`` that name a batch system (``local`` runs without one)
BATCH_SYSTEMS = ("slurm", "sge")

# Limits of the batch systems (the smaller of SLURM's and Grid Engine's, so a spec valid for
# one renders for the other): sbatch reads task and node counts as signed 32-bit integers,
# --cpus-per-task and --ntasks-per-node as 16-bit ones (65534 and 65535 mean unset/infinite),
# --signal's time as 16 bits, --time in minutes as a 32-bit integer, and --mem in MiB as 64 bits
# whose top bit flags per-CPU memory; Grid Engine counts slots (ranks * cpus_per_rank) in 32 bits.
INT32_MAX = 2**31 - 1
#: most ranks, nodes, GPUs; also the most CPUs in all (ranks * cpus_per_rank)
MAX_COUNT = INT32_MAX
#: most CPUs per rank and ranks per node
MAX_PER_NODE = 65533
#: longest walltime, seconds
MAX_WALLTIME = INT32_MAX * 60
#: largest memory, bytes
MAX_MEMORY = (2**63 - 1) * 2**20
#: longest grace, seconds
MAX_GRACE = 65535


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
        maximum: largest allowed integer (a limit of the batch systems).
        pattern: regular expression a string (or every list item) must match in full.
        tab: a TAB is allowed in the value (shell lines, quoted words); every other
            control character is refused in every string.
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
    maximum: int | None = None
    tab: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def child(self, name: str) -> Key | None:
        for k in self.children:
            if k.name == name:
                return k
        return None


RESOURCES = Key("resources", "section", "What the job asks the batch system for.", {}, children=(
    Key("ranks", "int", "Total MPI ranks, rank 0 (scheduler and driver) included.", REQUIRED, 8, minimum=2,
        maximum=MAX_COUNT),
    Key("nodes", "int", "Number of nodes (SLURM --nodes).", None, 1, minimum=1, maximum=MAX_COUNT),
    Key("ranks_per_node", "int", "MPI ranks on each node; nodes * ranks_per_node must equal ranks.", None, 8,
        minimum=1, maximum=MAX_PER_NODE),
    Key("cpus_per_rank", "int", "CPU cores per rank (SLURM --cpus-per-task; SGE slots per rank).", 1, 1,
        minimum=1, maximum=MAX_PER_NODE),
    Key("memory", "memory", "Memory per node with an explicit unit: KiB, MiB, GiB, TiB, KB, MB, GB or TB.",
        None, "16GiB"),
    Key("walltime", "walltime", "Time limit: HH:MM:SS, D-HH:MM:SS or whole minutes. Required for slurm and sge.",
        None, "01:30:00"),
    Key("grace", "int", "Seconds before the walltime at which the job gets the warning signal (USR1).", 120, 300,
        minimum=1, maximum=MAX_GRACE),
    Key("queue", "name", "SLURM partition or SGE queue.", None, "short", pattern=ACCOUNT_PATTERN),
    Key("account", "name", "Account (project) charged for the job.", None, "proj42", pattern=ACCOUNT_PATTERN),
    Key("gpus_per_node", "int", "GPUs on each node (SLURM --gpus-per-node; use directives on SGE).", 0, 0,
        minimum=0, maximum=MAX_COUNT),
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
        ["source .venv/bin/activate"], tab=True),
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
    Key("retries", "int", "Reruns after a failure or a timeout.", 0, 2, minimum=0, maximum=10_000),
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
        "--resume, at most this many times in all.", 0, 2, minimum=0, maximum=10_000),
))

PROGRAM = Key("program", "section", "What rank 0 runs: exactly one of script or pipeline.", REQUIRED, children=(
    Key("script", "str", "Driver script and its arguments (path relative to the spec file's folder).", None,
        "pi.py --samples 100000", tab=True),
    PIPELINE,
))

SPEC = Key("spec", "section", "An hpcdist job spec.", REQUIRED, children=(
    Key("name", "name", "Job name.", REQUIRED, "wordcount", pattern=NAME_PATTERN),
    Key("scheduler", "choice", "Batch system; --scheduler overrides it.", "local", "slurm",
        choices=(*BATCH_SYSTEMS, "local")),
    RESOURCES,
    ENVIRONMENT,
    Key("launcher", "choice", "How ranks start: auto (= mpiexec), srun (SLURM only), mpiexec, or openmpi "
        "(Open MPI's mpirun --with-ft ulfm).", "auto", "auto", choices=LAUNCHERS),
    Key("launcher_args", "strlist", "Extra arguments of the launcher (each one quoted).", [], ["--bind-to", "core"],
        tab=True),
    Key("failure_timeout", "int", "Seconds of silence after which rank 0 declares a worker lost "
        "(exported as HPCDIST_FAILURE_TIMEOUT).", 2, 2, minimum=1, maximum=MAX_GRACE),
    Key("allowed_failures", "int", "Deaths of workers running one task before that task fails with KilledWorker "
        "(exported as HPCDIST_ALLOWED_FAILURES).", 3, 3, minimum=1, maximum=1000),
    Key("trace", "bool", "false: record no trace in the run directory (exports HPCDIST_TRACE=off); true: "
        "every rank records its tasks and transfers in RUN_DIR/trace (see hpcdist report).", True, True),
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
    m = re.fullmatch(r"(?:([0-9]+)-)?([0-9]+):([0-5][0-9]):([0-5][0-9])", text)
    if m:
        days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
        if m.group(1) and hours > 23:
            return None
        return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if re.fullmatch(r"[0-9]+", text):
        return int(text) * 60
    return None


def parse_memory(text: str) -> int | None:
    """Bytes in a memory size with an explicit unit (``16GiB``), or None if malformed."""
    m = MEMORY_RE.match(text)
    if not m:
        return None
    # exact arithmetic: a float would round 8.2 * 10**6 down and overflow on huge numbers
    return round(Fraction(m.group(1)) * MEMORY_UNITS[m.group(2)])


_CONTROL_NAMES = {
    0x00: "NUL", 0x09: "TAB", 0x0A: "newline", 0x0D: "carriage return", 0x1B: "ESC", 0x7F: "DEL",
    0x85: "NEL", 0x2028: "line separator", 0x2029: "paragraph separator",
}  # fmt: skip


def control_char(text: str, tab: bool = False) -> str | None:
    """A message naming the first control character in ``text`` (C0 and C1 controls, DEL,
    U+2028/U+2029; TAB only when ``tab`` is False), or None when there is none."""
    for i, c in enumerate(text):
        if c == "\t" and tab:
            continue
        if unicodedata.category(c) in ("Cc", "Zl", "Zp"):
            code = ord(c)
            name = _CONTROL_NAMES.get(code)
            what = f"U+{code:04X}" + (f" ({name})" if name else "")
            allowed = " (only TAB is allowed here)" if tab else ""
            return (f"{text!r} contains the control character {what} at character {i + 1}{allowed}; "
                    "it could end a line of the job script or a batch option: remove it")
    return None


_DECIMAL_RE = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_SEXAGESIMAL_RE = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+")
_LIMIT_WHY = {
    MAX_COUNT: "sbatch reads counts as 32-bit integers",
    MAX_PER_NODE: "SLURM stores it in 16 bits",
    MAX_GRACE: "SLURM's --signal time has 16 bits",
}


def parse_int_text(node: Node, what: str = "an integer") -> tuple[int | None, str | None]:
    """An integer read from a scalar's text as written, not with YAML 1.1's resolver.

    Only plain decimal digits are an integer. A leading zero (YAML 1.1: octal), ``0x``/``0o``/``0b``,
    ``_`` separators and ``1:00`` (YAML 1.1: base 60) are refused with how to write the value.

    Returns:
        ``(value, None)``, or ``(None, message)``.
    """
    if node.kind != SCALAR or node.value is None:
        return None, f"expected {what}, got {describe(node)}"
    raw = str(node.raw).strip()
    if isinstance(node.value, bool):
        return None, f"expected {what}, got {raw}"
    if node.quoted:
        hint = "; write it without quotes" if _DECIMAL_RE.fullmatch(raw) else ""
        return None, f"expected {what}, got {describe(node)} (a quoted string){hint}"
    if _DECIMAL_RE.fullmatch(raw):
        return int(raw), None
    digits = raw.lstrip("+-")
    sign = "-" if raw.startswith("-") else ""
    if re.fullmatch(r"0[0-9_]+", digits) and "_" not in digits:
        octal = f"YAML 1.1 reads {raw} as octal {sign}{int(digits, 8)}; " if re.fullmatch("0[0-7]+", digits) else ""
        return None, f"expected {what}, got {raw}: {octal}write {sign}{int(digits)} without the leading zero"
    if re.fullmatch(r"0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+", digits):
        return None, f"expected {what}, got {raw}: write it in decimal digits ({sign}{int(digits.replace('_', ''), 0)})"
    if re.fullmatch(r"[0-9][0-9_]*", digits):
        return None, f"expected {what}, got {raw}: write {sign}{int(digits.replace('_', ''))} without underscores"
    if _SEXAGESIMAL_RE.fullmatch(raw):
        return None, (f"expected {what}, got {raw}: YAML 1.1 reads it in base 60 (as {node.value!r}); "
                      "write the number in decimal digits")
    if re.fullmatch(r"[-+]?[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?", raw):
        exact = Fraction(raw)
        hint = f": write {exact.numerator}" if exact.denominator == 1 and len(raw) < 30 else ""
        return None, f"expected {what}, got {raw}{hint}"
    return None, f"expected {what}, got {describe(node)}"


def scalar_text(node: Node) -> str | None:
    """A scalar as the string the user wrote: ``queue: 0042``, ``queue: on`` and ``queue: 123``
    stay the text ``0042``, ``on``, ``123`` (YAML 1.1 would make them 34, True and 123).
    None for null, lists, mappings and values given a non-string tag."""
    if node.kind != SCALAR or node.value is None:
        return None
    if isinstance(node.value, str):
        return node.value
    if node.quoted or not isinstance(node.value, (bool, int, float)) and not _is_date(node.value):
        return None
    return str(node.raw)


def _is_date(value: Any) -> bool:
    return isinstance(value, (datetime.date, datetime.datetime))


def _check_int(key: Key, node: Node) -> tuple[Any, str | None]:
    value, err = parse_int_text(node, _expected(key))
    if err:
        return None, err
    assert value is not None
    if key.minimum is not None and value < key.minimum:
        return None, f"expected {_expected(key)}, got {value}"
    if key.maximum is not None and value > key.maximum:
        why = _LIMIT_WHY.get(key.maximum, "a sane bound")
        return None, f"{value} is more than the limit {key.maximum} ({why})"
    return value, None


def check_value(key: Key, node: Node) -> tuple[Any, str | None]:
    """Check ``node`` against ``key`` (sections excluded) and convert it.

    Strings are read as written (see :func:`scalar_text`), integers from their text (see
    :func:`parse_int_text`), and no string may hold a control character (see :func:`control_char`).

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
            if key.pattern and not re.fullmatch(key.pattern, name, re.ASCII):
                return None, f"{name!r} is not a valid variable name (letters, digits, _; not first a digit)"
            text = scalar_text(sub)
            if text is None:
                return None, f"{name}: expected a string or number, got {describe(sub)}"
            bad = control_char(text, tab=True)
            if bad:
                return None, f"{name}: {bad}"
            out[name] = text
        return out, None
    if kind == "strlist":
        if node.kind != SEQUENCE:
            return None, f"expected a list of strings, got {got}"
        items = []
        for i, sub in enumerate(value):
            text = scalar_text(sub)
            if text is None:
                return None, f"item {i}: expected a string, got {describe(sub)}"
            bad = control_char(text, tab=key.tab)
            if bad:
                return None, f"item {i}: {bad}"
            if key.pattern and not re.fullmatch(key.pattern, text):
                return None, f"item {i}: {text!r} is not allowed ({_pattern_hint(key)})"
            items.append(text)
        return items, None
    if node.kind != SCALAR:
        return None, f"expected {_expected(key)}, got {got}"
    if kind == "int":
        return _check_int(key, node)
    if kind == "bool":
        if not isinstance(value, bool):
            return None, f"expected true or false, got {got}"
        return value, None
    if kind == "walltime":
        return _check_walltime(key, node)
    if kind == "memory":
        text = scalar_text(node)
        size = parse_memory(text) if text is not None else None
        if not size:
            hint = ""
            if text is not None and re.fullmatch(r"\s*[0-9][0-9_.eE+-]*\s*", text):
                hint = " (a size needs an explicit unit: write e.g. 1000MB or 16GiB)"
            return None, f"expected {_expected(key)}, got {got}{hint}"
        if size > MAX_MEMORY:
            assert text is not None
            return None, (f"{text.strip()} is more than the limit {MAX_MEMORY // 2**20} MiB "
                          "(SLURM reads --mem in MiB as 63 bits)")
        return size, None
    text = scalar_text(node)
    if text is None or text == "":
        return None, f"expected {_expected(key)}, got {got}"
    bad = control_char(text, tab=key.tab)
    if bad:
        return None, bad
    if kind == "choice" and text not in key.choices:
        return None, f"expected {_expected(key)}, got {text!r}"
    if key.pattern and not re.fullmatch(key.pattern, text):
        return None, f"expected {_expected(key)}, got {text!r}"
    return text, None


def _check_walltime(key: Key, node: Node) -> tuple[Any, str | None]:
    text = scalar_text(node)
    if text is None:
        return None, f"expected {_expected(key)}, got {describe(node)}"
    seconds = parse_walltime(text)
    stripped = text.strip()
    if seconds is None and re.fullmatch(r"[0-9]+:[0-5][0-9]", stripped):
        return None, (f"expected {_expected(key)}, got {stripped!r}: MM:SS or H:MM? "
                      f"write \"{stripped}:00\" for hours and minutes, or whole minutes")
    if seconds is None and re.fullmatch(r"0[xXoObB][0-9a-fA-F_]+|[0-9][0-9_]*_[0-9_]*", stripped):
        return None, f"expected {_expected(key)}, got {stripped!r}: write whole minutes in decimal digits"
    if not seconds:
        return None, f"expected {_expected(key)}, got {stripped!r}"
    if seconds > MAX_WALLTIME:
        return None, (f"{stripped} is more than the limit of {MAX_WALLTIME // 60} minutes "
                      "(SLURM reads --time in minutes as a 32-bit integer)")
    return seconds, None


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
