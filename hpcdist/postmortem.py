"""What each worker rank was running when a world ended, read after the fact.

Under ``hpcdist run`` and in job scripts every worker rank notes the task it runs in
``STATE_DIR/rank-N.task`` (``R KEY`` while running). When the world is gone, the launcher and
``hpcdist postmortem`` read those files back. In a pipeline's run directory the state
directory is ``RUN_DIR/ranks`` and the manifest beside it names each key's pipeline task.
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
    ``state_dir``; otherwise by key.
    """
    names = _task_names(RunDir(Path(state_dir).parent))
    lines = []
    for rank, path in rank_task_files(state_dir):
        text = path.read_bytes().decode(errors="replace").strip()
        if text.startswith("R "):
            key = text[2:]
            name = names.get(key.rsplit("~", 1)[0])  # a pipeline attempt runs as KEY~N
            what = f"pipeline task {name} (key {key})" if name else f"task {key!r}"
            lines.append(f"rank {rank} was running {what} when the job ended")
    return lines


def _task_names(run_dir: RunDir) -> dict[str, str]:
    """Cache key -> pipeline task name, from the run directory's manifest (empty without one)."""
    try:
        tasks = json.loads(run_dir.manifest.read_text(encoding="utf-8")).get("tasks", {})
        return {t["key"]: tid for tid, t in tasks.items() if isinstance(t, dict) and t.get("key")}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}
