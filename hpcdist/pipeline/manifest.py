"""What a pipeline run writes about itself: the manifest, ``progress.json`` and tracebacks.

The runner owns the per-task :class:`TaskRecord` table and decides when to write; this module
turns the plan and the records into those documents, and reads an earlier manifest back.
"""

from __future__ import annotations

import datetime
import errno
import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from hpcdist.errors import RemoteTraceback
from hpcdist.pipeline.graph import OK_STATES, Plan
from hpcdist.pipeline.model import Pipeline

__all__ = ["TaskRecord", "manifest", "lost_worker", "lost_workers", "progress", "previous_records", "remote_traceback",
           "traceback_file", "disk_full"]


@dataclass
class TaskRecord:
    """What the runner learnt about one concrete task (its attempts, where and when it ran).

    ``attempts`` counts the task's own tries (its ``retries`` are spent on them); ``lost_runs``
    counts its runs lost with a worker: it was running on a worker that died, or its result lived
    only there and was computed again. A loss never adds an attempt.
    """

    attempts: int = 0
    lost_runs: int = 0
    rank: int | None = None
    host: str | None = None
    start: float | None = None
    end: float | None = None
    bytes: int | None = None
    error: str | None = None
    file: str | None = None
    dispatched: float | None = None
    traceback: str | None = None


def manifest(plan: Plan, records: Mapping[str, TaskRecord], running: Mapping[str, Any], pipeline: Pipeline,
             client: Any, started: float, reason: str, final: bool = False, digest: str | None = None,
             code: int | None = None, lost: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The manifest document: per task its status, attempts, runs lost with a worker, rank, host,
    times, bytes, error, key; ``lost_workers``: the workers lost during the run (see :func:`lost_worker`)."""
    tasks = {}
    for tid, it in plan.items.items():
        rec = records.get(tid, TaskRecord())
        state = "running" if tid in running else it.state
        tasks[tid] = {
            "task": it.name, "index": it.index, "status": state, "attempts": rec.attempts,
            "lost_runs": rec.lost_runs, "rank": rec.rank,
            "host": rec.host, "start": rec.start, "end": rec.end, "bytes": rec.bytes,
            "error": rec.error or plan.errors.get(tid), "key": it.key or None, "output": rec.file,
            "inputs": list(it.deps),
        }
        if rec.traceback and state == "failed":
            tasks[tid]["traceback"] = rec.traceback
    doc: dict[str, Any] = {
        "transfer": transfer(plan, records, pipeline),
        "version": 1, "final": final, "started": started, "updated": time.time(),
        "counts": plan.counts(), "reason": reason or None, "save": list(pipeline.save),
        "workers": {str(r): w for r, w in client.workers.items()}, "backend": client.backend,
        "lost_workers": [dict(x) for x in lost], "tasks": tasks,
    }
    if digest is not None:
        doc["output_hash"] = digest
    if code is not None:
        doc["exit_status"] = code
    return doc


def lost_worker(loss: Any, tid_of: Callable[[str], str | None]) -> dict[str, Any]:
    """A ``lost_workers`` entry of the manifest from a :class:`~hpcdist.runtime.losses.WorkerLoss`.

    Its keys named as pipeline tasks by ``tid_of`` (None: not a run of a task, e.g. the load of a
    stored result): ``running`` (the task it was running, or None), ``requeued`` and
    ``recomputed`` (task ids, sorted; a loss of more keys than the record keeps names the first
    of them, ``recomputed_keys`` is the exact count of keys).
    """
    def tids(keys: Sequence[str]) -> list[str]:
        return sorted({t for t in map(tid_of, keys) if t is not None})

    running = tids(loss.running)
    return {
        "rank": loss.rank, "host": loss.host, "pid": loss.pid, "reason": loss.reason, "time": loss.time,
        "running": running[0] if running else None, "requeued": tids(loss.requeued),
        "recomputed": tids(loss.recomputed), "recomputed_keys": loss.n_recomputed, "workers_left": loss.workers_left,
    }


def lost_workers(losses: Sequence[Any], plan: Plan) -> list[dict[str, Any]]:
    """The manifest's ``lost_workers`` entries of ``losses`` (``Client.recoveries`` records), their
    keys named as the plan's task ids: a run of a task is ``KEY~ATTEMPT``; ``load-KEY``, reading a
    stored result, is no run of a task."""
    by_key = {it.key: tid for tid, it in plan.items.items() if it.key}

    def tid_of(key: str) -> str | None:
        return by_key.get(key.rsplit("~", 1)[0]) if "~" in key else None

    return [lost_worker(loss, tid_of) for loss in losses]


def transfer(plan: Plan, records: Mapping[str, TaskRecord], pipeline: Pipeline) -> dict[str, int]:
    """Input bytes of the tasks run here, and how many of them came from another rank
    (an estimate: a copy fetched earlier for another task is counted again)."""
    total = moved = 0
    for tid, it in plan.items.items():
        rec = records.get(tid)
        if rec is None or rec.rank is None or it.state != "done":
            continue
        for d in it.deps:
            dep, drec = plan.items[d], records.get(d)
            if drec is None or drec.bytes is None or dep.state != "done" or drec.rank is None:
                continue
            t = pipeline.tasks[it.name]
            if dep.name in t.after and dep.tid != it.source and dep.name not in t.refs:
                continue  # `after` passes no data
            total += drec.bytes
            moved += drec.bytes if drec.rank != rec.rank else 0
    return {"input_bytes": total, "moved_bytes": moved}


def progress(counts: Mapping[str, int], running: int) -> dict[str, Any]:
    """``progress.json``: the counts ``hpcdist status --watch`` shows."""
    return {
        "done": counts.get("done", 0) + counts.get("cached", 0), "failed": counts.get("failed", 0),
        "running": running, "total": sum(counts.values()),
        "updated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def previous_records(path: Path) -> dict[str, dict[str, Any]]:
    """Task entries of an earlier manifest in this run directory, by cache key (for resumed runs)."""
    try:
        tasks = json.loads(path.read_text(encoding="utf-8")).get("tasks", {})
        return {t["key"]: t for t in tasks.values() if t.get("key") and t.get("status") in OK_STATES}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def remote_traceback(error: BaseException) -> str | None:
    """The full traceback of a task's exception: the worker's text when it came from a worker."""
    cause = error.__cause__
    if isinstance(cause, RemoteTraceback):
        return cause.text
    if error.__traceback__ is None:
        return None
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def traceback_file(tid: str) -> str:
    """``squares[3]`` -> ``squares.3.txt`` (a dot never occurs in a task name)."""
    return tid.replace("[", ".").replace("]", "") + ".txt"


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the file system is full (or the quota is exhausted)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
