"""Helpers for the validation tables (tests/spec): a spec with one value written as raw YAML at a known place."""

from __future__ import annotations

from typing import Any

import yaml

SENTINEL = "XVALUEX"


def base_spec() -> dict[str, Any]:
    return {
        "name": "job",
        "scheduler": "slurm",
        "resources": {"ranks": 4, "walltime": "01:00:00"},
        "environment": {},
        "program": {"script": "driver.py"},
    }


def place(spec: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``dotted`` (``a.b``, ``a.b[0]`` for a list item, ``a.b.KEY`` in a mapping) to ``value``."""
    parts = dotted.split(".")
    node = spec
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    last = parts[-1]
    if last.endswith("[0]"):
        node[last[:-3]] = [value]
    else:
        node[last] = value


def spec_text(dotted: str, raw: str, spec: dict[str, Any] | None = None) -> tuple[str, int, int]:
    """YAML text of a valid spec whose ``dotted`` value is ``raw`` (YAML as the user writes it);
    also the line and column where the value starts."""
    spec = spec if spec is not None else base_spec()
    place(spec, dotted, SENTINEL)
    text = yaml.safe_dump(spec, sort_keys=False, default_flow_style=False, width=10_000)
    index = text.index(SENTINEL)
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return text.replace(SENTINEL, raw), line, column
