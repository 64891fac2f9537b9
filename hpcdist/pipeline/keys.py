"""Cache keys: what a task's result depends on, hashed into its name in the run directory.

A key covers the function (module, qualified name, and the source of everything it reaches in
the user's project: see :mod:`hpcdist.pipeline.codehash`) and the task's ``version``, the arguments with
every ``{ref: NAME}`` replaced by NAME's key(s), the mapped item (its value, or the key of
the output it comes from), the keys of ``after`` tasks, and a per-run nonce for
``cache: false`` tasks. Equal keys mean the stored result can be reused; a change anywhere
upstream changes every key downstream.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Sequence

from hpcdist.pipeline.codehash import code_identity
from hpcdist.pipeline.graph import Item, Plan
from hpcdist.pipeline.model import Ref

__all__ = ["function_identity", "make_key_fn", "canonical"]


def function_identity(fn: Callable[..., Any], project_dirs: Sequence[str] = (), version: str | None = None) -> str:
    """``module:qualname`` plus a hash of all the code ``fn`` reaches in the project's folders.

    See :mod:`hpcdist.pipeline.codehash` for exactly what is hashed; ``version`` (the task's
    ``version`` field) is mixed in.
    """
    return code_identity(fn, project_dirs, version)


def canonical(value: Any, plan: Plan) -> Any:
    """``value`` as JSON-ready data, each :class:`Ref` replaced by the referenced key(s)."""
    if isinstance(value, Ref):
        return {"$ref": plan.ref_keys(value.name)}
    if isinstance(value, (list, tuple)):
        return [canonical(v, plan) for v in value]
    if isinstance(value, dict):
        return {str(k): canonical(v, plan) for k, v in value.items()}
    return value


def make_key_fn(identities: dict[str, str], nonce: str) -> Callable[[Plan, Item], str]:
    """A :data:`~hpcdist.pipeline.graph.KeyFn` from function identities by task name.

    Args:
        identities: task name -> :func:`function_identity` of its callable.
        nonce: mixed into the keys of ``cache: false`` tasks (fresh every run).
    """

    def key_fn(plan: Plan, item: Item) -> str:
        t = plan.pipeline.tasks[item.name]
        if item.source is not None:
            src = plan.items[item.source]
            what = {"from": src.key} if plan.is_mapped(src.name) else {"index": [src.key, item.index]}
        elif item.index is not None:
            what = {"value": item.value}
        else:
            what = None
        doc = {
            "fn": identities[item.name],
            "args": canonical(t.args, plan),
            "kwargs": canonical(t.kwargs, plan),
            "item": what,
            "after": [plan.ref_keys(a) for a in t.after],
            "nonce": None if t.cache else nonce,
        }
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=repr)
        return f"{item.name}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"

    return key_fn
