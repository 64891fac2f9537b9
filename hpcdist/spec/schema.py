"""The JSON Schema (draft 2020-12) of a job spec, derived from the key table (:data:`hpcdist.spec.keys.SPEC`)."""

from __future__ import annotations

from typing import Any

from hpcdist.spec.keys import MEMORY_RE, REQUIRED, SPEC, WALLTIME_PATTERN, Key

__all__ = ["json_schema"]


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
        if key.maximum is not None:
            s["maximum"] = key.maximum
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
        if kind == "name":  # queue: 123, account: 12345 are read as the text written
            s = {"anyOf": [s, {"type": "integer", "minimum": 0}]}
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
