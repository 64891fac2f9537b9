"""What each worker rank was running when a world ended, read after the fact.

Under ``hpcdist run`` and in job scripts every worker rank notes the task it runs in
``STATE_DIR/rank-N.task`` (``R KEY`` while running). When the world is gone, the launcher and
``hpcdist postmortem`` read those files back. In a pipeline's run directory the state
directory is ``RUN_DIR/ranks`` and the manifest beside it names each key's pipeline task, and
the workers lost while the run went on (its ``lost_workers``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hpcdist.paths import RunDir, rank_task_files

__all__ = ["postmortem"]


def postmortem(state_dir: str | os.PathLike[str]) -> list[str]:
    """One line per worker rank that was running a task when the world ended.

    Tasks are named as in the pipeline (``squares[3]``) when a manifest is beside
    ``state_dir``; otherwise by key. A manifest that records workers lost during the run adds
    one line naming them first.
    """
    run_dir = RunDir(Path(state_dir).parent)
    doc = _manifest(run_dir)
    names = _task_names(doc)
    lines = _losses(doc, run_dir)
    for rank, path in rank_task_files(state_dir):
        text = path.read_bytes().decode(errors="replace").strip()
        if text.startswith("R "):
            key = text[2:]
            name = names.get(key.rsplit("~", 1)[0])  # a pipeline attempt runs as KEY~N
            what = f"pipeline task {name} (key {key})" if name else f"task {key!r}"
            lines.append(f"rank {rank} was running {what} when the job ended")
    return lines


def _manifest(run_dir: RunDir) -> dict:
    """The run directory's manifest (empty without a readable one)."""
    try:
        doc = json.loads(run_dir.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _task_names(doc: dict) -> dict[str, str]:
    """Cache key -> pipeline task name, from a manifest."""
    try:
        return {t["key"]: tid for tid, t in doc.get("tasks", {}).items() if isinstance(t, dict) and t.get("key")}
    except (AttributeError, TypeError):
        return {}


def _losses(doc: dict, run_dir: RunDir) -> list[str]:
    """One line naming the workers a manifest says were lost while the run went on (none: no line)."""
    lost = doc.get("lost_workers")
    if not isinstance(lost, list) or not lost:
        return []
    ranks = []
    for x in lost:
        if isinstance(x, dict):
            running = f" running {x['running']}" if x.get("running") else ""
            ranks.append(f"rank {x.get('rank')}{running} ({len(x.get('recomputed') or [])} task(s) recomputed)")
    return [f"{len(lost)} worker(s) were lost while the run went on: {', '.join(ranks)}; see lost_workers in "
            f"{run_dir.manifest}"]
