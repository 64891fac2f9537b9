"""Writing a validated spec back as YAML that :func:`hpcdist.spec.model.load_spec` reads again.

The keys, their order and how each value is written come from the key table
(:data:`hpcdist.spec.keys.SPEC`), which also drives the validator and the JSON Schema:
a value is written in the form its key's kind reads (a walltime as ``HH:MM:SS``, a memory
size with the largest exact unit, paths absolute). Keys without a value are left out.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

import yaml

from hpcdist.spec.keys import MEMORY_UNITS, SPEC, Key

if TYPE_CHECKING:
    from hpcdist.spec.model import JobSpec, Program

__all__ = ["spec_to_yaml", "spec_to_data"]


def spec_to_yaml(spec: JobSpec) -> str:
    """The resolved spec (overrides applied, paths absolute) as YAML that load_spec reads back."""
    header = f"# resolved from {spec.path} by hpcdist submit\n"
    return header + yaml.safe_dump(spec_to_data(spec), sort_keys=False, default_flow_style=False)


def spec_to_data(spec: JobSpec) -> dict[str, Any]:
    """The resolved spec as plain data (mappings, lists, strings, numbers), in key-table order."""
    return _section(SPEC, spec)


def _section(key: Key, obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in key.children:
        if child.name == "program":
            out["program"] = _program(obj.program)
            continue
        value = getattr(obj, child.name)
        if child.kind == "section":
            out[child.name] = _section(child, value)
        elif value is not None:
            out[child.name] = _value(child, value)
    return out


def _value(key: Key, value: Any) -> Any:
    kind = key.kind
    if kind == "walltime":
        hours, rest = divmod(value, 3600)
        return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    if kind == "memory":
        return memory_text(value)
    if kind == "strlist":
        return list(value)
    if kind in ("strmap", "mapping"):
        return dict(value)
    if kind == "path":
        return str(value)
    return value


def _program(program: Program) -> dict[str, Any]:
    # the key table has script and pipeline; the spec keeps script as a path and its arguments
    if program.script is not None:
        return {"script": shlex.join([str(program.script), *program.args])}
    return {"pipeline": dict(program.pipeline or {})}


def memory_text(size: int) -> str:
    """``size`` bytes in the largest unit that represents it exactly (load_spec needs a unit);
    decimal units too, so 1.5GB comes back as 1500MB, not as a rounded or 1.5e+06 float."""
    for unit in ("TiB", "GiB", "MiB", "KiB", "TB", "GB", "MB", "KB"):
        factor = MEMORY_UNITS[unit]
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size // 1000}.{size % 1000:03d}KB"
