"""YAML reading for job specs: values that remember where they came from.

``yaml.compose`` with the SafeLoader gives a node tree with start marks; it is turned into
:class:`Node` objects (value + file:line:column) so every validation message can point at
the line that caused it. Duplicate keys, which PyYAML silently accepts, are reported here.

Reading is bounded: the file must be UTF-8 text (:func:`read_spec_text` names the byte
offset of anything else), nesting deeper than :data:`MAX_DEPTH` is refused while composing
(no RecursionError), and aliases may expand the document to at most :data:`MAX_NODES`
nodes, counted on the composed graph before anything is expanded (no "billion laughs").
"""

from __future__ import annotations

import codecs
import os
import stat
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from hpcdist.errors import SpecError

SCALAR, MAPPING, SEQUENCE = "scalar", "mapping", "sequence"

#: deepest nesting of lists and mappings a spec may have
MAX_DEPTH = 64
#: most nodes a spec may have once every alias is expanded
MAX_NODES = 100_000
#: largest spec file read, in bytes
MAX_BYTES = 16 * 2**20


def escape_controls(text: str) -> str:
    """``text`` with every control character (C0, DEL, C1, U+2028/9) written as ``\\xNN``/``\\uNNNN``,
    so a message stays on one line whatever the user wrote."""
    if not any(_is_control(c) for c in text):
        return text
    return "".join(
        (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}") if _is_control(c) else c for c in text
    )


def _is_control(c: str) -> bool:
    return unicodedata.category(c) in ("Cc", "Zl", "Zp")


@dataclass(frozen=True)
class Where:
    """A position in a spec file (1-based line and column) or a ``--set`` override."""

    source: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{escape_controls(self.source)}:{self.line}:{self.column}"
        return escape_controls(self.source)


@dataclass
class Node:
    """One YAML value with its location.

    ``value`` is the Python value for a scalar, a ``dict[str, Node]`` for a mapping and a
    ``list[Node]`` for a sequence. ``raw`` is a scalar's text exactly as written (YAML 1.1
    would read ``1:30:00`` as the integer 5400; integers and walltimes are parsed from
    ``raw``). ``quoted`` is True for a quoted or block scalar (``"8"``, ``'on'``, ``|``).
    """

    kind: str
    value: Any
    where: Where
    raw: str | None = None
    key_where: dict[str, Where] = field(default_factory=dict)
    quoted: bool = False

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
        path, message = escape_controls(self.path), escape_controls(self.message)
        return f"{prefix}{path}: {message}" if path else f"{prefix}{message}"


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
    return Node(SCALAR, value, where, raw=str(node.value), quoted=node.style is not None)


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing nesting deeper than MAX_DEPTH while it composes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep (lists and mappings); "
                    "flatten the structure", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expanded_size(root: yaml.Node, source: str) -> Problem | None:
    """A problem when aliases make ``root`` expand past MAX_NODES nodes or MAX_DEPTH levels,
    or refer to themselves; computed on the composed graph (each node once, iteratively)."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if size[key] > MAX_NODES:
                return Problem(_where(node.start_mark, source), "",
                               f"aliases expand this document past {MAX_NODES} values "
                               "(an alias bomb?); write the values out or use fewer aliases")
            if depth[key] > MAX_DEPTH:
                return Problem(_where(node.start_mark, source), "",
                               f"aliases nest this document more than {MAX_DEPTH} levels deep")
            continue
        if key in size:
            continue
        if key in on_path:
            return Problem(_where(node.start_mark, source), "",
                           "recursive alias: an anchored value contains an alias to itself")
        on_path.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in on_path:
                return Problem(_where(child.start_mark, source), "",
                               "recursive alias: an anchored value contains an alias to itself")
            if id(child) not in size:
                stack.append((child, False))
    return None


def _compose(text: str, source: str, problems: list[Problem]) -> yaml.Node | None:
    try:
        loader = _BoundedLoader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as exc:
        line, column = _line_col(text, exc.position)
        what = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        problems.append(Problem(Where(source, line, column), "",
                                f"character {what} is not allowed in YAML (control characters must be "
                                "written as escapes inside double quotes, and are refused in most values)"))
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        problems.append(Problem(_where(mark, source), "", f"YAML syntax error: {what}"))
        return None
    except yaml.YAMLError as exc:
        problems.append(Problem(Where(source), "", f"YAML error: {exc}"))
        return None
    except RecursionError:  # a guard: the depth limit above should always come first
        problems.append(Problem(Where(source), "", f"nested too deep (at most {MAX_DEPTH} levels)"))
        return None
    if root is None:
        return None
    problem = _expanded_size(root, source)
    if problem is not None:
        problems.append(problem)
        return None
    return root


def _line_col(text: str, position: int) -> tuple[int, int]:
    before = text[:position]
    line = before.count("\n") + 1
    return line, position - (before.rfind("\n") + 1) + 1


def read_spec_text(source: str) -> str:
    """The text of spec file ``source``, decoded as UTF-8 (an initial BOM is dropped).

    Raises:
        SpecError: naming the file and, for bad bytes, the byte offset, line and column:
            no such file, a directory, unreadable, too large, UTF-16/32, NUL bytes, not UTF-8.
    """
    path = os.fspath(source)
    try:
        if os.path.isdir(path):
            raise SpecError(f"{escape_controls(path)}: is a directory, not a spec file")
        if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
            # a FIFO without a writer would block for ever
            raise SpecError(f"{escape_controls(path)}: not a regular file (a pipe or device?); give the spec file")
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(f"{escape_controls(path)}: no such file") from None
    except PermissionError:
        raise SpecError(f"{escape_controls(path)}: cannot read the spec: permission denied") from None
    except OSError as exc:
        raise SpecError(f"{escape_controls(path)}: cannot read the spec: {exc.strerror or exc}") from None
    name = escape_controls(path)
    if len(data) > MAX_BYTES:
        raise SpecError(f"{name}: larger than {MAX_BYTES // 2**20} MiB; a job spec is a small text file")
    for bom, encoding in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                          (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if data.startswith(bom):
            raise SpecError(f"{name}: byte offset 0: the file is {encoding} (it starts with a byte order mark); "
                            "save it as UTF-8")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    nul = data.find(b"\0")
    if nul >= 0:
        line, column = _byte_line_col(data, nul)
        raise SpecError(f"{name}:{line}:{column}: byte offset {nul}: NUL byte; a spec is UTF-8 text "
                        "(is this a binary or UTF-16 file?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _byte_line_col(data, exc.start)
        raise SpecError(f"{name}:{line}:{column}: byte offset {exc.start}: byte 0x{data[exc.start]:02x} is not "
                        "valid UTF-8; save the file as UTF-8") from None


def _byte_line_col(data: bytes, offset: int) -> tuple[int, int]:
    before = data[:offset]
    line = before.count(b"\n") + 1
    start = before.rfind(b"\n") + 1
    column = len(before[start:].decode("utf-8", errors="replace")) + 1
    return line, column


def parse(text: str, source: str, problems: list[Problem]) -> Node | None:
    """Parse YAML ``text`` into a :class:`Node` tree, appending problems to ``problems``.

    Args:
        text: the YAML document.
        source: the name used in messages (the spec path as the user gave it).
        problems: receives syntax errors, duplicate keys and non-scalar keys.

    Returns:
        The root node, or None when the text is not valid YAML or is empty.
    """
    root = _compose(text, source, problems)
    if root is None:
        return None
    return _convert(root, source, problems, "")


def parse_override_value(text: str, where: Where, problems: list[Problem]) -> Node | None:
    """Parse the value part of ``--set key=value`` as YAML (usually a single scalar)."""
    if text.strip() == "":
        return Node(SCALAR, "", where, raw="")
    before = len(problems)
    node = _compose(text, where.source, problems)
    if node is None:
        if len(problems) > before:
            # the value has no file position: point at the option itself
            problems[before:] = [Problem(where, "", "cannot parse the value as YAML: " + p.message)
                                 for p in problems[before:]]
            return None
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
