"""The rules between keys of a job spec, and those a batch system adds (pure functions).

Each rule lives here once. The validator (:mod:`hpcdist.spec.model`) applies every rule to
the spec as read, pointing each problem at the line of its key; rendering for a batch system
other than the spec's own ``scheduler`` applies :func:`system_rules` again (through
:meth:`hpcdist.spec.model.JobSpec.system_problems`). Each function returns
``(where, key, message)`` for every rule broken, ``where`` being the dotted key whose line the
message points at (None: the top of the file).
"""

from __future__ import annotations

import os
import re
import string
from pathlib import Path
from typing import Any

from hpcdist.errors import SpecError
from hpcdist.spec.keys import BATCH_SYSTEMS, DIRECTIVE_PATH_PATTERN, MAX_COUNT, OUTPUT_FIELDS, control_char
from hpcdist.spec.source import read_spec_text
from hpcdist.spec.template import PLACEHOLDERS, template_problem

__all__ = ["system_rules", "launcher_problems", "layout_problems", "total_problems", "output_problems", "directive_path_problems",
           "template_problems", "LONGEST_TIMESTAMP", "RUN_DIR_TEMP_EXTRA", "NAME_MAX"]

#: the longest timestamp a run directory can get: hpcdist submit adds -2 ... -1000 on a clash
LONGEST_TIMESTAMP = "20000101-000000-1000"
#: bytes ``hpcdist submit`` adds to the run directory's name while it builds it (.NAME.XXXXXXXX.partial)
RUN_DIR_TEMP_EXTRA = len(".") + len(".XXXXXXXX.partial")
#: the longest file name most file systems hold, in bytes
NAME_MAX = 255

Problems = list[tuple[str | None, str, str]]


def system_rules(system: Any, *, name: Any, launcher: Any, gpus_per_node: Any, walltime: Any) -> list[tuple[str, str]]:
    """The rules one batch system adds, as ``(key path, message)`` for each one broken.

    The validator applies them to the spec's ``scheduler`` (with file:line), and rendering for
    another system (``render(spec, "sge", ...)``) applies them too. Values that failed their own
    checks (not str/int) are skipped.
    """
    out: list[tuple[str, str]] = []
    if system not in BATCH_SYSTEMS:
        return out
    if walltime is None:
        out.append(("resources.walltime", f"required for {system} jobs (e.g. walltime: \"01:00:00\")"))
    if system == "sge":
        if launcher == "srun":
            out.append(("launcher", "srun exists only under SLURM; use auto or mpiexec"))
        if isinstance(gpus_per_node, int) and not isinstance(gpus_per_node, bool) and gpus_per_node:
            out.append(("resources.gpus_per_node", "Grid Engine has no standard GPU request; use "
                        "resources.directives with your site's resource (e.g. -l gpu=1)"))
        if isinstance(name, str) and name[:1].isdigit():
            out.append(("name", f"Grid Engine refuses job names that start with a digit, got {name!r}; "
                        "start it with a letter"))
    return out


#: launcher_args only srun understands (Open MPI's mpirun refuses or misreads them)
SRUN_ONLY_ARGS = ("--mpi", "--kill-on-bad-exit", "-K", "--cpu-bind", "--distribution", "--het-group")
#: launcher_args only MPICH's Hydra understands
HYDRA_ONLY_ARGS = ("-disable-auto-cleanup", "-launcher", "-rmk", "-ppn", "-hosts", "-genv", "-genvall")


def launcher_problems(launcher: Any, launcher_args: Any) -> list[tuple[str, str]]:
    """``launcher: openmpi`` with arguments meant for another launcher, as ``(key path, message)``.

    Open MPI's ``mpirun --with-ft ulfm`` is the only launch line under which the survivors of a
    death learn of it from MPI; it cannot take srun's or Hydra's options (and Open MPI's ULFM
    does not work under a direct ``srun`` launch, so there is no srun form of it).
    """
    if launcher != "openmpi" or not isinstance(launcher_args, list):
        return []
    out = []
    for i, arg in enumerate(launcher_args):
        word = str(arg).split("=", 1)[0]
        if word in SRUN_ONLY_ARGS or (word.startswith("-K") and len(word) <= 3 and not word.startswith("--")):
            out.append(("launcher_args", f"item {i}: {arg!r} is an srun option; launcher: openmpi starts "
                        "the ranks with Open MPI's mpirun (ULFM needs mpirun: use launcher: srun for srun's "
                        "options, or mpirun's own)"))
        elif word in HYDRA_ONLY_ARGS:
            out.append(("launcher_args", f"item {i}: {arg!r} is an option of MPICH's mpiexec (Hydra); "
                        "launcher: openmpi starts the ranks with Open MPI's mpirun"))
    return out


def total_problems(res: dict[str, Any]) -> Problems:
    """ranks * cpus_per_rank within what the batch systems count."""
    ranks, cpus = res.get("ranks"), res.get("cpus_per_rank")
    if isinstance(ranks, int) and isinstance(cpus, int) and ranks * cpus > MAX_COUNT:
        return [("resources.cpus_per_rank", "resources",
                 f"ranks * cpus_per_rank = {ranks} * {cpus} = {ranks * cpus} CPUs, more than the limit "
                 f"{MAX_COUNT} (SLURM and Grid Engine count CPUs and slots in 32 bits)")]
    return []


def layout_problems(res: dict[str, Any]) -> Problems:
    """ranks, nodes and ranks_per_node agree."""
    ranks, nodes, rpn = res.get("ranks"), res.get("nodes"), res.get("ranks_per_node")
    if not isinstance(ranks, int):
        return []
    if isinstance(nodes, int) and isinstance(rpn, int):
        if nodes * rpn != ranks:
            return [("resources.ranks_per_node", "resources",
                     f"nodes * ranks_per_node = {nodes} * {rpn} = {nodes * rpn}, but ranks is {ranks}")]
    elif isinstance(rpn, int) and ranks % rpn:
        return [("resources.ranks_per_node", "resources.ranks_per_node",
                 f"ranks ({ranks}) is not a multiple of ranks_per_node ({rpn})")]
    elif isinstance(nodes, int) and nodes > ranks:
        return [("resources.nodes", "resources.nodes", f"more nodes ({nodes}) than ranks ({ranks})")]
    return []


def template_problems(template: Path) -> Problems:
    """A site template names only the placeholders render fills in (it fails here, not at submit)."""
    try:
        text = read_spec_text(str(template))
    except SpecError as exc:
        return [("template", "template", str(exc))]
    problem = template_problem(text, dict.fromkeys(PLACEHOLDERS, ""), str(template))
    return [("template", "template", problem)] if problem else []


def directive_path_problems(base: Path, output: str, name: Any, has_output: bool) -> Problems:
    """The run directory appears in --output= / -o, which sbatch and qsub parse without quoting."""
    run_dir = os.path.normpath(base / output.format(name=name, timestamp=LONGEST_TIMESTAMP))
    if re.fullmatch(DIRECTIVE_PATH_PATTERN, run_dir):
        return []
    bad = sorted({c for c in run_dir if not re.fullmatch(DIRECTIVE_PATH_PATTERN, c)})
    return [("output" if has_output else None, "output",
             f"the run directory {run_dir!r} holds {', '.join(repr(c) for c in bad)}, which cannot "
             "appear in a batch directive (allowed: letters, digits and _ . / + @ % : , = -); "
             "set output to another folder")]


def output_problems(base: Path, output: str, name: Any, name_valid: bool, has_output: bool) -> Problems:
    """``output``: known placeholders only, and a run directory whose names fit the file system."""
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(output) if f is not None]
    except ValueError as exc:
        return [("output", "output", f"bad {{placeholder}} syntax: {exc}")]
    names = [f for f, _, _ in fields]
    if any(spec or conv for _, spec, conv in fields):  # {name:>999999999} would fill gigabytes
        return [("output", "output", "placeholders take no format spec or conversion: write {name} and {timestamp}")]
    unknown = [n for n in names if n not in OUTPUT_FIELDS]
    out: Problems = [("output", "output", f"unknown placeholder {{{field_name}}}; available: "
                      + ", ".join(f"{{{f}}}" for f in OUTPUT_FIELDS)) for field_name in unknown]
    if unknown or not name_valid:
        return out
    rel = output.format(name=name, timestamp=LONGEST_TIMESTAMP)
    run_dir = os.path.normpath(base / rel)
    parts = [p for p in run_dir.split(os.sep) if p]
    if not parts:
        return [("output", "output", "the run directory cannot be the file system root")]
    bad = control_char(run_dir)
    if bad:
        return [("output", "output", "the run directory " + bad)]
    for i, part in enumerate(parts):
        extra = RUN_DIR_TEMP_EXTRA if i == len(parts) - 1 else 0
        size = len(part.encode("utf-8", "surrogateescape")) + extra
        if size > NAME_MAX:
            what = "the run directory's name" if extra else f"the folder {part[:40]!r}..."
            key = "output" if has_output else "name"
            return [(key, key, f"{what} would be {size} bytes"
                     + (f" (with the longest timestamp and the {extra} bytes hpcdist submit adds "
                        "while it builds it)" if extra else "")
                     + f", more than the file name limit of {NAME_MAX} bytes: shorten the name or output")]
    return []
