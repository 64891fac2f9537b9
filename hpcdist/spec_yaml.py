"""YAML reading for job specs: values that remember where they came from.

``yaml.compose`` with the SafeLoader gives a node tree with start marks; it is turned into
:class:`Node` objects (value + file:line:column) so every validation message can point at
the line that caused it. Duplicate keys, which PyYAML silently accepts, are reported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

SCALAR, MAPPING, SEQUENCE = "scalar", "mapping", "sequence"


@dataclass(frozen=True)
class Where:
    """A position in a spec file (1-based line and column) or a ``--set`` override."""

    source: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.source}:{self.line}:{self.column}"
        return self.source


@dataclass
class Node:
    """One YAML value with its location.

    ``value`` is the Python value for a scalar, a ``dict[str, Node]`` for a mapping and a
    ``list[Node]`` for a sequence. ``raw`` is a scalar's text exactly as written (YAML 1.1
    would read ``1:30:00`` as the integer 5400; walltimes are parsed from ``raw``).
    """

    kind: str
    value: Any
    where: Where
    raw: str | None = None
    key_where: dict[str, Where] = field(default_factory=dict)

    def plain(self) -> Any:
        """The value with every :class:`Node` unwrapped into plain Python objects."""
        if self.kind == MAPPING:
            return {k: v.plain() for k, v in self.value.items()}
        if self.kind == SEQUENCE:
            return [v.plain() for v in self.value]
        return self.value


@dataclass(frozen=True)
class Problem:
    """One validation problem: where, the key path, and what is wrong."""

    where: Where
    path: str
    message: str

    def __str__(self) -> str:
        prefix = f"{self.where}: "
        return f"{prefix}{self.path}: {self.message}" if self.path else f"{prefix}{self.message}"


def _where(mark: yaml.Mark | None, source: str) -> Where:
    if mark is None:
        return Where(source)
    return Where(source, mark.line + 1, mark.column + 1)


def _convert(node: yaml.Node, source: str, problems: list[Problem], path: str) -> Node:
    where = _where(node.start_mark, source)
    if isinstance(node, yaml.MappingNode):
        items: dict[str, Node] = {}
        key_where: dict[str, Where] = {}
        for key_node, value_node in node.value:
            kw = _where(key_node.start_mark, source)
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(Problem(kw, path, "keys must be plain names, not lists or mappings"))
                continue
            key = str(key_node.value)
            sub = f"{path}.{key}" if path else key
            if key in items:
                first = key_where[key]
                problems.append(Problem(kw, sub, f"duplicate key (first defined at line {first.line})"))
                continue
            key_where[key] = kw
            items[key] = _convert(value_node, source, problems, sub)
        return Node(MAPPING, items, where, key_where=key_where)
    if isinstance(node, yaml.SequenceNode):
        return Node(
            SEQUENCE,
            [_convert(n, source, problems, f"{path}[{i}]") for i, n in enumerate(node.value)],
            where,
        )
    try:
        value = SafeConstructor().construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        problems.append(Problem(where, path, f"cannot read value: {exc}"))
        value = node.value
    return Node(SCALAR, value, where, raw=str(node.value))


def parse(text: str, source: str, problems: list[Problem]) -> Node | None:
    """Parse YAML ``text`` into a :class:`Node` tree, appending problems to ``problems``.

    Args:
        text: the YAML document.
        source: the name used in messages (the spec path as the user gave it).
        problems: receives syntax errors, duplicate keys and non-scalar keys.

    Returns:
        The root node, or None when the text is not valid YAML or is empty.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        problems.append(Problem(_where(mark, source), "", f"YAML syntax error: {what}"))
        return None
    except yaml.YAMLError as exc:
        problems.append(Problem(Where(source), "", f"YAML error: {exc}"))
        return None
    if root is None:
        return None
    return _convert(root, source, problems, "")


def parse_override_value(text: str, where: Where, problems: list[Problem]) -> Node | None:
    """Parse the value part of ``--set key=value`` as YAML (usually a single scalar)."""
    if text.strip() == "":
        return Node(SCALAR, "", where, raw="")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        problems.append(Problem(where, "", f"cannot parse the value as YAML: {exc}"))
        return None
    if node is None:
        return Node(SCALAR, None, where, raw=text)
    converted = _convert(node, where.source, problems, "")
    return _relocate(converted, where)


def _relocate(node: Node, where: Where) -> Node:
    # values from --set have no file position; every part points at the option itself
    node.where = where
    if node.kind == MAPPING:
        node.key_where = {k: where for k in node.key_where}
        for child in node.value.values():
            _relocate(child, where)
    elif node.kind == SEQUENCE:
        for child in node.value:
            _relocate(child, where)
    return node
